"""`vigil bench pipeline CONFIG`: a pipeline's fps beside a plain sequential loop doing the same
work on the same input (read, process each stage in turn, write), the way a course script
writes it. The loop is the baseline (ratio 1.0); both are measured in the same run.

When the pipeline has a DNN detector, its model alone is measured too, interleaved with the
other two (benchmarks.model_ceiling: same frames, runtime, device, precision and threads,
async queue full, ready tensors): `x_model` is each row's fps over the model's own throughput,
the ceiling a pipeline built around that model can approach. `cpu_ms` is the process CPU time
per frame (all threads; the pipeline's from its first result to its last, so model loading is
left out), and `x_model_cpu` the model's CPU per frame over the row's: the same ratio on a
saturated machine, and steadier than wall-clock fps when other jobs share the cores."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks import model_ceiling
from benchmarks.engine import frame_from, open_reader, run_pipeline, start_stage, stop_stage
from pipeline.config import PipelineConfig
from pipeline.errors import ConfigError
from pipeline.frame import Frame


class Timed(NamedTuple):
    """One measured round: frames, wall seconds, set-up seconds, CPU seconds per frame, and for a
    pipeline each stage thread's and each capture thread's CPU ms a frame (summary.json's
    `cpu_ms_per_frame` of its stages and sources)."""

    frames: int
    seconds: float
    setup: float | None
    cpu_per_frame: float | None
    stage_cpu_ms: dict[str, float | None] | None = None
    capture_cpu_ms: dict[str, float | None] | None = None


def sequential_baseline(config: PipelineConfig, output_dir: Path, max_frames: int | None) -> Timed:
    """Read -> every stage's process() in turn -> next frame, in one thread."""
    t_setup = time.perf_counter()
    reader = open_reader(config.sources[0])
    stages = [start_stage(s, output_dir, reader.info) for s in config.stages]
    n = 0
    t0, cpu0 = time.perf_counter(), time.process_time()
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
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for stage in stages:
        stop_stage(stage, reader.info)
    reader.close()
    return Timed(n, seconds, setup, cpu / max(1, n))


def pipeline_run(config: PipelineConfig, output_dir: Path) -> Timed:
    """One run of the pipeline; CPU counted from the first frame out to the last."""
    marks: list[float] = []

    def seen(_frame: Frame) -> None:
        marks.append(time.process_time())

    summary = run_pipeline(config, output_dir, on_result=seen)
    cpu = (marks[-1] - marks[0]) / (len(marks) - 1) if len(marks) > 1 else None
    stages = {sid: st.get("cpu_ms_per_frame") for sid, st in summary["stages"].items()}
    captures = {sid: src.get("cpu_ms_per_frame") for sid, src in summary["sources"].items()}
    return Timed(summary["frames"], summary["processing_s"], summary["setup_s"], cpu, stages, captures)


def stage_breakdown(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Where a pipeline row's CPU goes, ms a frame: each stage's own thread, each source's capture
    thread (reading, decoding), then the rest of the process (the runtimes' worker threads, the
    run's supervision)."""
    threads = {f"stage {sid}": ms for sid, ms in (row.get("stages") or {}).items()}
    threads |= {f"capture {sid} (read, decode)": ms for sid, ms in (row.get("captures") or {}).items()}
    rows = [{"thread": name, "cpu_ms": ms} for name, ms in threads.items()]
    known = sum(ms for ms in threads.values() if ms is not None)
    if row.get("cpu_ms") is not None:
        rest = round(row["cpu_ms"] - known, 2)
        # approximate: the threads count from their start, the row from its first frame out
        rows.append({"thread": "the rest (about): runtime threads, supervision", "cpu_ms": rest})
    return rows


def _row(name: str, runs: list[Timed], baseline_fps: float | None) -> dict[str, Any]:
    # steady state: frames / processing time of the best round; set-up (model loading) beside it
    best = min(runs, key=lambda x: x.seconds / max(1, x.frames))
    fps = best.frames / best.seconds if best.seconds > 0 else 0.0
    # CPU: the cheapest round, and (pipeline) its split by stage thread
    cheapest = min(
        (r for r in runs if r.cpu_per_frame is not None), key=lambda r: r.cpu_per_frame or 0.0, default=None
    )
    extra: dict[str, Any] = {}
    if cheapest is not None and cheapest.stage_cpu_ms:
        extra["stages"] = cheapest.stage_cpu_ms
    if cheapest is not None and cheapest.capture_cpu_ms:
        extra["captures"] = cheapest.capture_cpu_ms
    return {
        "run": name,
        "frames": best.frames,
        "setup_s": None if best.setup is None else round(best.setup, 2),
        "seconds": round(best.seconds, 3),
        "fps": round(fps, 2),
        "cpu_ms": round((cheapest.cpu_per_frame or 0.0) * 1000, 2) if cheapest is not None else None,
        "x_sequential": 1.0
        if baseline_fps is None
        else (round(fps / baseline_fps, 2) if baseline_fps else None),
        **extra,
    }


def _add_model_ratios(rows: list[dict[str, Any]], model: dict[str, Any]) -> None:
    for row in rows:
        row["x_model"] = round(row["fps"] / model["fps"], 2) if model["fps"] else None
        cpu = row["cpu_ms"]
        row["x_model_cpu"] = round(model["cpu_ms"] / cpu, 2) if cpu and model["cpu_ms"] else None


def run(
    config: PipelineConfig, max_frames: int | None = None, rounds: int = 2, without: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Interleave `rounds` of each (loop, pipeline, model alone) and keep each side's best, so
    a burst of load elsewhere on the machine does not decide the ratio. Uses the first source
    only; `without` drops those stage ids (e.g. render and video, to measure detect + JSONL)."""
    import cv2

    if max_frames:
        for s in config.sources:
            s.max_frames = max_frames
    config.sources = config.sources[:1]
    max_frames = max_frames or config.sources[0].max_frames
    _drop(config, without)
    default_threads = cv2.getNumThreads()
    seq_runs: list[Timed] = []
    pipe_runs: list[Timed] = []
    model_runs: list[Timed] = []
    stage = model_ceiling.detector_stage(config)
    alone = None
    if stage is not None:
        frames = model_ceiling.decoded_frames(
            config, min(max_frames or model_ceiling.MAX_FRAMES, model_ceiling.MAX_FRAMES)
        )
        alone = model_ceiling.ModelAlone(config, stage, frames)
    try:
        with tempfile.TemporaryDirectory(prefix="vigil-bench-") as out:
            for r in range(rounds):
                cv2.setNumThreads(
                    default_threads
                )  # the loop gets OpenCV's own default, as a user's script would
                seq_runs.append(sequential_baseline(config, Path(out) / f"seq{r}", max_frames))
                pipe_runs.append(pipeline_run(config, Path(out) / f"pipe{r}"))
                if alone is not None:
                    cpu0 = time.process_time()
                    n, seconds = alone.measure(3.0)
                    model_runs.append(Timed(n, seconds, None, (time.process_time() - cpu0) / n))
    finally:
        if alone is not None:
            alone.close()
    baseline = _row("sequential loop (read, process each stage, write)", seq_runs, None)
    pipeline = _row("vigil pipeline (stages in threads, ZeroMQ links)", pipe_runs, baseline["fps"])
    rows = [baseline, pipeline]
    if alone is not None:
        rows.append(_row(alone.label(), model_runs, baseline["fps"]))
        _add_model_ratios(rows, rows[-1])
    return rows


def _drop(config: PipelineConfig, stage_ids: Sequence[str]) -> None:
    """Remove stages by id; a stage fed by a removed one is fed by what fed that one."""
    known = {s.id for s in config.stages}
    unknown = [i for i in stage_ids if i not in known]
    if unknown:
        raise ConfigError(f"--without: no stage {', '.join(unknown)} (stages: {', '.join(sorted(known))})")
    for gone in [s for s in config.stages if s.id in stage_ids]:
        for s in config.stages:
            if s.after == gone.id:
                s.after = gone.after
        config.stages.remove(gone)
