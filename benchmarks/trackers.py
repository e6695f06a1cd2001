"""Tracker cost per frame at 10, 100, 1000 objects (`vigil bench trackers`).

Synthetic input: N boxes moving at constant speed and bouncing off the borders of a scene
whose size grows with N (constant density), with detector jitter, a few missed detections
and scores mostly in 0.7..1 with 10 % low ones (0.2..0.5, as under occlusion). Every tracker
sees the same frames; the table gives the time per frame and its ratio to `track.iou`
measured in the same run, plus the IDs given (close to N means identities held).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stages.tracking import ByteTracker, IouTracker, SortTracker, Tracker

TRACKERS: dict[str, Callable[[], Tracker]] = {
    "track.iou": IouTracker,
    "track.sort": SortTracker,
    "track.bytetrack": ByteTracker,
}
BASELINE = "track.iou"


def synthetic_frames(
    objects: int, frames: int, seed: int = 0, miss_rate: float = 0.02
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(xyxy (n, 4), scores (n,), true object ids (n,)) per frame, boxes of about 30x60 px."""
    rng = np.random.default_rng(seed)
    side = 400.0 * np.sqrt(max(objects, 1) / 10)  # ~10 objects per 400x400 px
    size = rng.uniform([20, 40], [40, 80], (objects, 2))
    pos = rng.uniform(0, side, (objects, 2))
    vel = rng.uniform(-3, 3, (objects, 2))
    out = []
    for _ in range(frames):
        pos += vel
        bounce = (pos < 0) | (pos > side)
        vel[bounce] *= -1
        pos = np.clip(pos, 0, side)
        seen = rng.random(objects) >= miss_rate
        xy = pos[seen] + rng.normal(0, 1.0, (int(seen.sum()), 2))
        scores = np.where(
            rng.random(len(xy)) < 0.1, rng.uniform(0.2, 0.5, len(xy)), rng.uniform(0.7, 1.0, len(xy))
        )
        out.append((np.concatenate([xy, xy + size[seen]], axis=1), scores, np.flatnonzero(seen)))
    return out


def run(sizes: Sequence[int] = (10, 100, 1000), frames: int = 60, warmup: int = 5) -> list[dict[str, Any]]:
    """Time every tracker on the same synthetic frames; one row per (tracker, size).

    Row: tracker, objects, frames (timed), ms_per_frame (mean), p95_ms, vs_iou (time ratio to
    the IoU tracker at that size), ids (track IDs given).
    """
    rows = []
    for n in sizes:
        data = synthetic_frames(n, frames + warmup)
        base = None
        for name, make in TRACKERS.items():
            tracker = make()
            times = []
            for k, (xyxy, scores, _) in enumerate(data):
                start = time.perf_counter()
                tracker.update(xyxy, scores)
                if k >= warmup:  # the first frames only create tracks
                    times.append(time.perf_counter() - start)
            ms = 1000 * float(np.mean(times))
            base = ms if name == BASELINE else base
            rows.append(
                {
                    "tracker": name,
                    "objects": n,
                    "frames": len(times),
                    "ms_per_frame": round(ms, 3),
                    "p95_ms": round(1000 * float(np.percentile(times, 95)), 3),
                    f"vs_{BASELINE.split('.')[1]}": round(ms / base, 2) if base else None,
                    "ids": tracker.table.next_id - 1,
                }
            )
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain-text table."""
    heads = ("tracker", "objects", "frames", "ms_per_frame", "p95_ms", f"vs_{BASELINE.split('.')[1]}", "ids")
    widths = [max(len(h), *(len(str(r.get(h))) for r in rows)) for h in heads]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(str(r.get(h)).rjust(w) for h, w in zip(heads, widths, strict=True)) for r in rows]
    return "\n".join(lines)
