"""Per-track smoothing of classifier outputs: windowed probabilities, robust values, hysteresis.

A face classifier flickers from frame to frame (blur, pose, a hand over the mouth). When a
tracker ran first, the same person keeps a `track_id`, so the evidence of the last `window`
frames can be pooled:

- class probabilities (emotion, gender) are averaged over the window (`window_mean`);
- a track's label changes only when the averaged evidence does: the new top class must beat
  the current label by `switch_margin` (`hysteresis_label`), or stay on top of the average for
  a whole window (so a narrow but lasting lead still wins);
- hysteresis starts once the window is full: until then the label is the top class of the
  average, so a wrong reading on a track's first frames is not locked in;
- regressions (age) take the median of the window (`robust_value`): one bad frame moves it
  little;
- a track not seen for `forget_after` frames (and every track of a source that ended) is
  forgotten, so memory stays bounded on endless streams.

Pure numpy; `TrackSmoother` is the small state holder the stages use, keyed by
(source, track_id). Frame numbers are the source's `seq` (frames emitted by the capture).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def window_mean(rows: Sequence[np.ndarray]) -> np.ndarray:
    """The mean probability vector of the window (rows of equal length)."""
    return np.mean(np.asarray(rows, np.float64), axis=0)


def hysteresis_label(averaged: np.ndarray, current: int | None, switch_margin: float) -> int:
    """Index of the label to show: the top class of `averaged`, unless a current label exists
    and the top class beats it by no more than `switch_margin` (then the current one stays)."""
    top = int(np.argmax(averaged))
    if current is None or current == top:
        return top
    return top if float(averaged[top]) - float(averaged[current]) > switch_margin else current


def robust_value(values: Sequence[float]) -> float:
    """The median of the window (ignores NaN); NaN when nothing is known."""
    arr = np.asarray(values, np.float64)
    arr = arr[np.isfinite(arr)]
    return float(np.median(arr)) if arr.size else float("nan")


@dataclass
class _Head:
    rows: deque[np.ndarray]
    label: int | None = None
    challenger: int | None = None  # the top class of the average while it is not the label
    challenger_frames: int = 0  # frames in a row it has been on top


@dataclass
class _Track:
    last_seen: int
    heads: dict[str, _Head] = field(default_factory=dict)
    values: dict[str, deque[float]] = field(default_factory=dict)


Key = tuple[str, Hashable]


class TrackSmoother:
    """Window state per (source, track id) and per named output ("emotion", "gender", "age").

    window: frames of evidence pooled; switch_margin: how much (0..1) the new top class of
    the averaged probabilities must beat the current label by; forget_after: frames a track
    may go unseen before its state is dropped.
    """

    def __init__(self, window: int = 15, switch_margin: float = 0.15, forget_after: int = 30) -> None:
        if window < 1 or forget_after < 1 or not 0 <= switch_margin < 1:
            raise ValueError("window and forget_after must be >= 1, switch_margin in [0, 1)")
        self.window, self.switch_margin, self.forget_after = window, switch_margin, forget_after
        self._tracks: dict[Key, _Track] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def _track(self, key: Key, now: int) -> _Track:
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track(now)
        track.last_seen = max(track.last_seen, now)
        return track

    def probabilities(self, key: Key, head: str, probs: np.ndarray, now: int) -> tuple[int, np.ndarray]:
        """Add one frame's probabilities; returns (label index, window-averaged probabilities)."""
        track = self._track(key, now)
        state = track.heads.get(head)
        if state is None or (state.rows and len(state.rows[0]) != len(probs)):
            state = track.heads[head] = _Head(deque(maxlen=self.window))
        state.rows.append(np.asarray(probs, np.float64))
        averaged = window_mean(state.rows)
        top = int(np.argmax(averaged))
        if len(state.rows) < self.window:  # warming up: no label to protect yet
            state.label = top
        else:
            state.label = hysteresis_label(averaged, state.label, self.switch_margin)
        if state.label == top:
            state.challenger, state.challenger_frames = None, 0
        else:
            same = state.challenger == top
            state.challenger, state.challenger_frames = top, state.challenger_frames + 1 if same else 1
            if state.challenger_frames >= self.window:  # a lasting lead wins, however narrow
                state.label, state.challenger, state.challenger_frames = top, None, 0
        return state.label, averaged

    def value(self, key: Key, head: str, value: float, now: int) -> float:
        """Add one frame's value; returns the window median."""
        window = self._track(key, now).values.setdefault(head, deque(maxlen=self.window))
        window.append(float(value))
        return robust_value(window)

    def advance(self, source: str, now: int) -> int:
        """The source reached frame `now`: forget its tracks unseen for more than
        `forget_after` frames. Returns how many were forgotten."""
        stale = [
            k for k, t in self._tracks.items() if k[0] == source and now - t.last_seen > self.forget_after
        ]
        for key in stale:
            del self._tracks[key]
        return len(stale)

    def end_source(self, source: str) -> None:
        """Forget every track of a source that ended."""
        for key in [k for k in self._tracks if k[0] == source]:
            del self._tracks[key]


class LastReadings:
    """The attributes each track was last given and the frame they were read on, for a classifier
    that reads a tracked face only every `every` frames and repeats its last reading in between.

    A track unseen for more than `forget_after` frames (or `every`, if longer) is forgotten."""

    def __init__(self, every: int, forget_after: int = 30) -> None:
        if every < 1 or forget_after < 1:
            raise ValueError("every and forget_after must be >= 1")
        self.every, self.keep = every, max(every, forget_after)
        self._last: dict[Key, tuple[int, int, dict[str, Any]]] = {}  # key -> (read, last seen, values)

    def __len__(self) -> int:
        return len(self._last)

    def due(self, key: Key, now: int) -> bool:
        """Whether the track must be read on frame `now` (never read, or `every` frames ago)."""
        entry = self._last.get(key)
        return entry is None or now - entry[0] >= self.every

    def put(self, key: Key, now: int, values: dict[str, Any]) -> None:
        self._last[key] = (now, now, values)

    def reuse(self, key: Key, now: int) -> dict[str, Any] | None:
        """The track's last reading (None when it has none), and the track counted as seen."""
        entry = self._last.get(key)
        if entry is None:
            return None
        self._last[key] = (entry[0], now, entry[2])
        return entry[2]

    def advance(self, source: str, now: int) -> None:
        """The source reached frame `now`: forget its tracks unseen for too long."""
        for key in [k for k, e in self._last.items() if k[0] == source and now - e[1] > self.keep]:
            del self._last[key]

    def end_source(self, source: str) -> None:
        for key in [k for k in self._last if k[0] == source]:
            del self._last[key]
