"""`vigil bench transport`: cost per frame of each link kind beside a queue.Queue hand-off
(the baseline, ratio 1.0) and a memcpy of the frame, measured in one run on the same frames."""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.engine import open_link
from pipeline.frame import Frame

BASELINE = "queue.Queue hand-off"


def _timed_handoff(send: Callable[[Frame], Any], recv: Callable[[], Any], frames: list[Frame]) -> float:
    """Seconds per frame for a producer thread handing frames to this thread."""

    def produce() -> None:
        for f in frames:
            send(f)

    t = threading.Thread(target=produce)
    t0 = time.perf_counter()
    t.start()
    for _ in frames:
        recv()
    elapsed = time.perf_counter() - t0
    t.join()
    return elapsed / len(frames)


def _memcpy(image: np.ndarray, n: int) -> float:
    target = np.empty_like(image)
    t0 = time.perf_counter()
    for _ in range(n):
        np.copyto(target, image)
    return (time.perf_counter() - t0) / n


def run(size: tuple[int, int] = (1920, 1080), n: int = 300) -> list[dict[str, Any]]:
    """One row per link: link, ms_per_frame, x_queue (time / queue.Queue's), frame (WxH)."""
    w, h = size
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    image.setflags(write=False)
    frames = [Frame("bench", i, i / 25, time.time(), image) for i in range(n)]
    q: queue.Queue[Frame] = queue.Queue(maxsize=4)
    seconds = {"memcpy (np.copyto)": _memcpy(image, n), BASELINE: _timed_handoff(q.put, q.get, frames)}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as run_dir:
        for transport in ("inproc", "ipc", "tcp"):
            link = open_link(transport, run_dir)
            _timed_handoff(link.send, link.recv, frames[:10])  # warm-up: connect, allocate
            seconds[f"vigil {transport} link"] = _timed_handoff(link.send, link.recv, frames)
            link.close()
    base = seconds[BASELINE]
    return [
        {
            "link": name,
            "ms_per_frame": round(s * 1000, 4),
            "x_queue": round(s / base, 2) if base > 0 else None,
            "frame": f"{w}x{h}",
        }
        for name, s in seconds.items()
    ]
