"""A long run on a looped file (`vigil bench soak CONFIG --source FILE --minutes N`).

Every interval it prints the process's resident memory, threads and open file descriptors and
the end-to-end latency (capture to leaving the pipeline) of the frames in that interval; at the
end, the growth of each figure from the first interval (after warm-up) to the last, as ratios
measured in this one run. A leak shows as RSS, threads or fds climbing interval after interval.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import PipelineConfig, with_sources


@dataclass
class Sample:
    minute: float
    frames: int
    fps: float
    rss_mb: float
    threads: int
    fds: int
    latency_ms_p50: float
    latency_ms_p99: float


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run(
    config: PipelineConfig, source: str, minutes: float, interval_s: float = 60.0, output: Path | None = None
) -> list[Sample]:
    """Run the config on `source` looped for `minutes`, sampling every `interval_s`."""
    from pipeline.api import Pipeline

    config = with_sources(config, [source])
    # looped and paced like a camera, so latency is processing time, not a queue of a whole file
    config.sources[0] = config.sources[0].model_copy(update={"loop": True, "realtime": True})
    pipe = Pipeline(config, output or Path("out/bench_soak"))
    samples: list[Sample] = []
    latencies: list[float] = []
    frames, started = 0, time.monotonic()
    window_start, window_frames = started, 0
    with pipe:
        for frame in pipe:
            latencies.append(time.time() - frame.wall)
            frames += 1
            window_frames += 1
            now = time.monotonic()
            if now - window_start >= interval_s:
                lat = np.asarray(latencies) * 1000
                samples.append(
                    Sample(
                        round((now - started) / 60, 2),
                        frames,
                        round(window_frames / (now - window_start), 1),
                        round(_rss_mb(), 1),
                        threading.active_count(),
                        _fds(),
                        round(float(np.percentile(lat, 50)), 1),
                        round(float(np.percentile(lat, 99)), 1),
                    )  # fmt: skip
                )
                print(format_sample(samples[-1]), flush=True)
                latencies.clear()
                window_start, window_frames = now, 0
            if now - started >= minutes * 60:
                break
    return samples


def format_sample(s: Sample) -> str:
    return (
        f"{s.minute:7.2f} min  {s.frames:8d} frames  {s.fps:7.1f} fps  RSS {s.rss_mb:7.1f} MB  "
        f"threads {s.threads:3d}  fds {s.fds:4d}  latency p50 {s.latency_ms_p50:7.1f} ms  p99 {s.latency_ms_p99:7.1f} ms"
    )


def growth(samples: list[Sample]) -> dict[str, Any]:
    """Last interval over the first after warm-up (the second sample when there are three or more)."""
    if len(samples) < 2:
        return {}
    first = samples[1] if len(samples) >= 3 else samples[0]
    last = samples[-1]
    return {
        "rss": round(last.rss_mb / first.rss_mb, 3),
        "threads": round(last.threads / first.threads, 3),
        "fds": round(last.fds / first.fds, 3),
        "latency_p99": round(last.latency_ms_p99 / first.latency_ms_p99, 3) if first.latency_ms_p99 else None,
        "from_minute": first.minute,
        "to_minute": last.minute,
    }
