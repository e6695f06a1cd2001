"""Benchmarks that print ratios measured in one run on one machine, never remembered numbers.

transport: cost per frame of each link kind beside a queue.Queue hand-off and a memcpy.
pipeline:  a pipeline's fps beside a plain sequential loop doing the same work on the same
           input (read, process each stage in turn, write), the way the course writes it.
"""

from __future__ import annotations

import functools
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import PipelineConfig
from pipeline.frame import Frame
from pipeline.stage import StageContext, get_kind
from pipeline.transport import LinkReceiver, LinkSender, endpoint


def _timed_handoff(send: Any, recv: Any, frames: list[Frame]) -> float:
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


def transport_bench(size: tuple[int, int] = (1920, 1080), n: int = 300) -> list[dict[str, Any]]:
    w, h = size
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    image.setflags(write=False)
    frames = [Frame("bench", i, i / 25, time.time(), image) for i in range(n)]
    rows: list[dict[str, Any]] = []

    target = np.empty_like(image)
    t0 = time.perf_counter()
    for _ in range(n):
        np.copyto(target, image)
    rows.append({"link": "memcpy (np.copyto)", "ms_per_frame": (time.perf_counter() - t0) / n * 1000})

    q: queue.Queue[Frame] = queue.Queue(maxsize=4)
    rows.append({"link": "queue.Queue hand-off", "ms_per_frame": _timed_handoff(q.put, q.get, frames) * 1000})

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as run_dir:
        for transport in ("inproc", "ipc", "tcp"):
            rx = LinkReceiver(endpoint(transport, "bench", run_dir=run_dir), "lossless", 4)
            tx = LinkSender(rx.address, "lossless", 4)
            take = functools.partial(rx.recv, 5000)
            _timed_handoff(tx.send, take, frames[:10])  # warm-up: connect, allocate
            per = _timed_handoff(tx.send, take, frames)
            rows.append({"link": f"vigil {transport} link", "ms_per_frame": per * 1000})
            tx.close(0)
            rx.close()
    base = rows[1]["ms_per_frame"]
    for r in rows:
        r["ms_per_frame"] = round(r["ms_per_frame"], 4)
        r["x_queue"] = round(r["ms_per_frame"] / base, 2) if base > 0 else None
        r["frame"] = f"{w}x{h}"
    return rows


def sequential_baseline(
    config: PipelineConfig, output_dir: Path, max_frames: int | None
) -> tuple[int, float, float]:
    """Read -> every stage's process() in turn -> next frame, in one thread.
    Returns (frames, processing seconds, setup seconds)."""
    from pipeline.sources import open_source

    t_setup = time.perf_counter()
    src = config.sources[0]
    reader = open_source(src)
    stages = []
    for s in config.stages:
        cls = get_kind(s.kind)
        stage = cls(s.options, StageContext(s.id, output_dir=output_dir, sources={src.id: reader.info}))
        stage.setup()
        stage.start_stream(reader.info)
        stages.append(stage)
    n, seq = 0, 0
    t0 = time.perf_counter()
    setup = t0 - t_setup
    while max_frames is None or n < max_frames:
        cap = reader.read()
        if cap is None:
            break
        frame: Frame | None = Frame(src.id, seq, cap.pts, time.time(), cap.image, index=cap.index)
        seq += 1
        for stage in stages:
            if frame is None:
                break
            frame = stage.process(frame)
        n += 1
    for stage in stages:
        stage.end_stream(src.id)
        stage.close()
    reader.close()
    return n, time.perf_counter() - t0, setup


def pipeline_bench(
    config: PipelineConfig, max_frames: int | None = None, rounds: int = 2
) -> list[dict[str, Any]]:
    """Interleave `rounds` of each and keep each side's best, so a burst of load elsewhere on
    the machine does not decide the ratio."""
    import cv2

    from pipeline.runner import Runner

    if max_frames:
        for s in config.sources:
            s.max_frames = max_frames
    config.sources = config.sources[:1]
    default_threads = cv2.getNumThreads()
    seq_runs, pipe_runs = [], []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as out:
        for r in range(rounds):
            cv2.setNumThreads(default_threads)  # the loop gets OpenCV's own default, as a user's script would
            seq_runs.append(sequential_baseline(config, Path(out) / f"seq{r}", max_frames))
            summary = Runner(config, output_dir=Path(out) / f"pipe{r}", quiet=True).run().summary
            pipe_runs.append((summary["frames"], summary["processing_s"], summary["setup_s"]))
    # steady state: frames / processing time, each side's best round; set-up (model loading) beside it
    n_seq, t_seq, s_seq = min(seq_runs, key=lambda x: x[1] / max(1, x[0]))
    n_pipe, t_pipe, s_pipe = min(pipe_runs, key=lambda x: x[1] / max(1, x[0]))
    seq_fps, pipe_fps = n_seq / t_seq, n_pipe / t_pipe
    return [
        {
            "run": "sequential loop (read, process each stage, write)",
            "frames": n_seq,
            "setup_s": round(s_seq, 2),
            "seconds": round(t_seq, 3),
            "fps": round(seq_fps, 2),
            "x_sequential": 1.0,
        },
        {
            "run": "vigil pipeline (stages in threads, ZeroMQ links)",
            "frames": n_pipe,
            "setup_s": round(s_pipe, 2),
            "seconds": round(t_pipe, 3),
            "fps": round(pipe_fps, 2),
            "x_sequential": round(pipe_fps / seq_fps, 2),
        },
    ]


def format_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r.get(k))) for r in rows)) for k in keys}
    lines = ["  ".join(k.ljust(widths[k]) for k in keys), "  ".join("-" * widths[k] for k in keys)]
    lines += ["  ".join(str(r.get(k)).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(lines)
