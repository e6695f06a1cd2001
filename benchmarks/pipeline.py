"""`vigil bench pipeline CONFIG`: a pipeline's fps beside a plain sequential loop doing the same
work on the same input (read, process each stage in turn, write), the way a course script
writes it. The loop is the baseline (ratio 1.0); both are measured in the same run."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.engine import frame_from, open_reader, run_pipeline, start_stage, stop_stage
from pipeline.config import PipelineConfig
from pipeline.frame import Frame


def sequential_baseline(
    config: PipelineConfig, output_dir: Path, max_frames: int | None
) -> tuple[int, float, float]:
    """Read -> every stage's process() in turn -> next frame, in one thread.
    Returns (frames, processing seconds, setup seconds)."""
    t_setup = time.perf_counter()
    reader = open_reader(config.sources[0])
    stages = [start_stage(s, output_dir, reader.info) for s in config.stages]
    n = 0
    t0 = time.perf_counter()
    setup = t0 - t_setup
    while max_frames is None or n < max_frames:
        captured = reader.read()
        if captured is None:
            break
        frame: Frame | None = frame_from(reader.info, n, captured, time.time())
        for stage in stages:
            if frame is None:
                break
            frame = stage.process(frame)
        n += 1
    for stage in stages:
        stop_stage(stage, reader.info)
    reader.close()
    return n, time.perf_counter() - t0, setup


def _row(name: str, runs: list[tuple[int, float, float]], baseline_fps: float | None) -> dict[str, Any]:
    # steady state: frames / processing time of the best round; set-up (model loading) beside it
    n, seconds, setup = min(runs, key=lambda x: x[1] / max(1, x[0]))
    fps = n / seconds if seconds > 0 else 0.0
    return {
        "run": name,
        "frames": n,
        "setup_s": round(setup, 2),
        "seconds": round(seconds, 3),
        "fps": round(fps, 2),
        "x_sequential": 1.0
        if baseline_fps is None
        else (round(fps / baseline_fps, 2) if baseline_fps else None),
    }


def run(config: PipelineConfig, max_frames: int | None = None, rounds: int = 2) -> list[dict[str, Any]]:
    """Interleave `rounds` of each and keep each side's best, so a burst of load elsewhere on
    the machine does not decide the ratio. Uses the first source only."""
    import cv2

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
            summary = run_pipeline(config, Path(out) / f"pipe{r}")
            pipe_runs.append((summary["frames"], summary["processing_s"], summary["setup_s"]))
    baseline = _row("sequential loop (read, process each stage, write)", seq_runs, None)
    pipeline = _row("vigil pipeline (stages in threads, ZeroMQ links)", pipe_runs, baseline["fps"])
    return [baseline, pipeline]
