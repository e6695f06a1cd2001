"""Pre-roll ring buffer, clip windows and retention for `sink.clips`: pure, no files written here.

A `FrameRing` keeps the last seconds of one source (by pts) so a clip can start before the
event that asked for it; a `ClipWindow` is the span a clip covers, extended by every event that
falls inside it; `expired_clips` picks the files retention removes, oldest first.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class FrameRing:
    """The frames of the last `seconds` of media time, plus the one just before (so a clip can
    start at or before `event pts - seconds`), at most `max_frames` of them."""

    seconds: float
    max_frames: int = 1000
    frames: collections.deque[tuple[float, np.ndarray]] = field(default_factory=collections.deque)

    def push(self, pts: float, image: np.ndarray) -> None:
        self.frames.append((pts, image))
        while len(self.frames) > self.max_frames or (
            len(self.frames) > 1 and self.frames[1][0] <= pts - self.seconds
        ):
            self.frames.popleft()

    def since(self, start_pts: float) -> list[tuple[float, np.ndarray]]:
        """The buffered frames from the last one at or before `start_pts` on (all when none is)."""
        return self.frames_from(pre_roll_start([p for p, _ in self.frames], start_pts))

    def frames_from(self, index: int) -> list[tuple[float, np.ndarray]]:
        return list(self.frames)[index:]

    def clear(self) -> None:
        self.frames.clear()


def pre_roll_start(pts: Sequence[float], start_pts: float) -> int:
    """Index of the last pts <= start_pts in an increasing sequence (0 when there is none)."""
    found = int(np.searchsorted(np.asarray(pts, np.float64), start_pts, side="right")) - 1
    return max(found, 0)


@dataclass
class ClipWindow:
    """What one clip covers: from its first frame's pts to `end_pts` (last event + post-roll)."""

    start_pts: float
    end_pts: float
    event_ids: list[str] = field(default_factory=list)

    def covers(self, pts: float) -> bool:
        """Whether an event at `pts` falls inside the clip still being written (so it extends it)."""
        return self.start_pts <= pts <= self.end_pts

    def extend(self, event_id: str, pts: float, post_roll_s: float) -> None:
        self.event_ids.append(event_id)
        self.end_pts = max(self.end_pts, pts + post_roll_s)

    def done(self, pts: float) -> bool:
        """Whether the frame at `pts` is past the end: the clip is complete."""
        return pts > self.end_pts


@dataclass(frozen=True)
class ClipFile:
    path: Path
    size: int  # bytes
    mtime: float  # s since the epoch


def expired_clips(
    files: Sequence[ClipFile],
    now: float,
    max_clips: int | None = None,
    max_bytes: int | None = None,
    max_age_s: float | None = None,
) -> list[Path]:
    """The clips to delete, oldest first: those older than `max_age_s`, then the oldest until at
    most `max_clips` files of at most `max_bytes` in all are left."""
    ordered = sorted(files, key=lambda f: (f.mtime, str(f.path)))
    doomed = [f for f in ordered if max_age_s is not None and now - f.mtime > max_age_s]
    kept = [f for f in ordered if f not in doomed]
    total = sum(f.size for f in kept)
    while kept and (
        (max_clips is not None and len(kept) > max_clips) or (max_bytes is not None and total > max_bytes)
    ):
        oldest = kept.pop(0)
        total -= oldest.size
        doomed.append(oldest)
    return [f.path for f in doomed]
