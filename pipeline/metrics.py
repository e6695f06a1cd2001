"""Per-stage counters and latency percentiles, and the run summary built from them."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

LATENCY_WINDOW = 20_000  # latest per-frame latencies kept for percentiles


class StageSummary(TypedDict):
    """One stage's row of the run summary (JSON-ready; times in ms, rates in frames/s)."""

    kind: str
    placement: str
    workers: int
    frames_in: int
    frames_out: int
    fps: float | None  # frames out per second between first frame in and last frame out
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    queue_depth_max: int
    queue_depth_mean: float
    drops: int
    invalid: int  # messages its input link refused (malformed, forged, not from this run)
    errors: int
    restarts: int
    # CPU of the stage's own thread per frame in (a stage in one thread; None otherwise), setup
    # left out, closing (encoder flushes) in; the worker threads of a runtime or library (OpenVINO
    # streams, TensorFlow, OpenCV's parallel loops) are not in it
    cpu_ms_per_frame: float | None


@dataclass
class StageMetrics:
    """Counters of one stage, updated by the thread that emits its results."""

    stage_id: str
    kind: str
    placement: str = "thread"
    workers: int = 1
    frames_in: int = 0
    frames_out: int = 0
    errors: int = 0
    restarts: int = 0
    first_in: float | None = None
    last_out: float | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    queue_depth_max: int = 0
    queue_depth_sum: int = 0
    queue_samples: int = 0
    drops: int = 0
    invalid: int = 0
    cpu_s: float | None = None  # CPU seconds of the stage's thread since setup (thread placement)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def frame_in(self) -> None:
        with self.lock:
            self.frames_in += 1
            if self.first_in is None:
                self.first_in = time.monotonic()

    def frame_out(self, latency_s: float | None) -> None:
        with self.lock:
            self.frames_out += 1
            self.last_out = time.monotonic()
            if latency_s is not None:
                self.latencies.append(latency_s)

    def error(self) -> None:
        with self.lock:
            self.errors += 1

    def sample_queue(self, depth: int) -> None:
        with self.lock:
            self.queue_depth_max = max(self.queue_depth_max, depth)
            self.queue_depth_sum += depth
            self.queue_samples += 1

    def to_dict(self) -> StageSummary:
        with self.lock:
            lat = np.asarray(self.latencies, dtype=np.float64) * 1000
            busy = (self.last_out - self.first_in) if self.first_in and self.last_out else 0.0
            return {
                "kind": self.kind,
                "placement": self.placement,
                "workers": self.workers,
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "fps": round(self.frames_out / busy, 2) if busy > 0 else None,
                "latency_ms_p50": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
                "latency_ms_p99": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
                "queue_depth_max": self.queue_depth_max,
                "queue_depth_mean": round(self.queue_depth_sum / self.queue_samples, 2)
                if self.queue_samples
                else 0,
                "drops": self.drops,
                "invalid": self.invalid,
                "errors": self.errors,
                "restarts": self.restarts,
                "cpu_ms_per_frame": cpu_ms_per_frame(self.cpu_s, self.frames_in),
            }


def cpu_ms_per_frame(cpu_s: float | None, frames: int) -> float | None:
    """A thread's CPU seconds as milliseconds a frame (None when unmeasured or no frame)."""
    return round(1000 * cpu_s / frames, 3) if cpu_s is not None and frames else None


def format_table(stages: Mapping[str, Mapping[str, Any]]) -> str:
    """The human summary printed at the end of a run (rows as `StageSummary`, extra keys ignored)."""
    head = (
        f"{'stage':<16}{'kind':<20}{'in':>7}{'out':>7}{'fps':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms':>8}"
        f"{'queue':>7}{'drops':>7}{'errors':>7}"
    )
    rows = [head, "-" * len(head)]
    for sid, m in stages.items():

        def num(v: Any, fmt: str) -> str:
            width = int(fmt.split(".")[0])
            return format(v, fmt) if isinstance(v, (int, float)) else "-".rjust(width)

        rows.append(
            f"{sid[:15]:<16}{m['kind'][:19]:<20}{m['frames_in']:>7}{m['frames_out']:>7}{num(m['fps'], '9.1f')}"
            f"{num(m['latency_ms_p50'], '9.2f')}{num(m['latency_ms_p99'], '9.2f')}"
            f"{num(m.get('cpu_ms_per_frame'), '8.2f')}{m['queue_depth_max']:>7}"
            f"{m['drops']:>7}{m['errors']:>7}"
        )
    return "\n".join(rows)
