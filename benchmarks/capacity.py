"""`vigil bench capacity CONFIG --source FILE --fps 10`: how many cameras this machine sustains.

A "camera" is one copy of the source, paced in real time at `fps` (`realtime: true`). Camera i of
N starts i/N of the way into the file (`start_s`) and loops, so N copies show N different moments
of the scene, as N real cameras do: real cameras are not synchronised. `--lockstep` starts every
copy at the beginning instead, all showing the same frame at the same moment. That is the worst
case for gating, whose gain comes from cameras not needing the detector at the same moment: in
lockstep every camera sees the same motion on the same frame, so their detector runs come in
bursts that push latency over a frame interval while the CPU is on average far from busy. A count
is sustained when every frame of every copy comes out of the pipeline (no drops) and the p99
latency from capture to the end of the pipeline stays below one frame interval. Links are
lossless, so a pipeline that falls behind shows it as latency; with `latest` links (a live
camera's default) one slow inference already drops the frame queued behind it downstream, so
"no drops" would measure the worst hiccup rather than what the machine sustains. The count is found by raising it: a one-camera run measures the CPU time a
frame costs, the search starts a little below what that predicts, doubles while the count holds, and
bisects between the largest count that held and the smallest that failed. The same search runs on
the config with gating off (no `filter.motion`, no `gate:`), on the same input in the same run,
and the ratio of the two counts is the gain. Numbers are for this machine under its present
load: only the ratio travels.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import PipelineConfig, SourceConfig
from pipeline.errors import VigilError
from pipeline.frame import Frame

log = logging.getLogger("vigil.bench")


@dataclass
class Trial:
    """One run of `cameras` copies of the source."""

    cameras: int
    frames_expected: int
    frames_out: int
    p99_ms: float
    cpu_percent: float  # process CPU time over wall time, in % of one core
    cpu_ms_per_frame: float  # process CPU time per frame out: what a camera costs, whatever the load
    ok: bool


def ungated(config: PipelineConfig) -> PipelineConfig:
    """The same pipeline with gating off: filter.motion stages removed, `gate:` dropped."""
    removed = {s.id: s.after for s in config.stages if s.kind == "filter.motion"}
    stages = []
    for stage in config.stages:
        if stage.id in removed:
            continue
        update: dict[str, Any] = {}
        after = stage.after
        while after in removed:  # a stage fed by a removed one is fed by what fed it
            after = removed[after]
        if after != stage.after:
            update["after"] = after
        if "gate" in stage.with_:
            update["with_"] = {k: v for k, v in stage.with_.items() if k != "gate"}
            update["options"] = stage.options.model_copy(update={"gate": None})
        stages.append(stage.model_copy(update=update))
    return config.model_copy(update={"stages": stages})


@dataclass(frozen=True)
class Cameras:
    """What each camera of a trial plays."""

    uri: str
    fps: float  # camera frame rate
    every: int  # one frame of the file in `every` makes that rate
    frames: int  # frames a camera sends after the warm-up
    duration_s: float | None  # the file's length: camera i starts i/count into it; None: lockstep

    @property
    def mode(self) -> str:
        return "lockstep" if self.duration_s is None else "spread"


def _cameras(config: PipelineConfig, cams: Cameras, count: int, frames: int) -> PipelineConfig:
    """`config` with `count` real-time copies of the file as its sources, `frames` frames each."""
    step = cams.duration_s / count if cams.duration_s else 0.0
    sources = [
        SourceConfig.model_validate(
            {
                "id": f"cam{i}",
                "uri": cams.uri,
                "realtime": True,
                "every": cams.every,
                "max_frames": frames,
                "loop": True,
                "start_s": round(i * step, 3),
            }
        )
        for i in range(count)
    ]
    links = config.links.model_copy(update={"policy": "lossless"})
    return config.model_copy(update={"sources": sources, "links": links})


WARMUP_S = 2.0  # the first seconds of each camera are left out: first inferences compile and warm caches


def trial(config: PipelineConfig, cams: Cameras, count: int, out: Path) -> Trial:
    """Run `count` real-time copies of the file for `cams.frames` frames each (plus a warm-up)."""
    from pipeline.runner import Runner

    latencies: list[float] = []
    lock = threading.Lock()
    start: list[float] = []  # CPU and wall clock at the first result: model loading is left out

    fps = cams.fps
    warmup = int(WARMUP_S * fps)

    def on_result(frame: Frame) -> None:
        lag = time.time() - frame.wall
        if frame.seq < warmup:
            return
        with lock:
            if not start:
                start.extend((time.process_time(), time.perf_counter()))
            latencies.append(lag)

    run_config = _cameras(config, cams, count, cams.frames + warmup)
    result = Runner(run_config, output_dir=out, quiet=True, on_result=on_result).run()
    if result.status == "failed":  # a missing model, a broken source: say so, not "0 frames"
        raise VigilError(f"capacity trial with {count} camera(s) failed: {result.summary['error']}")
    cpu0, wall0 = start or (time.process_time(), time.perf_counter())
    cpu = time.process_time() - cpu0
    wall = max(time.perf_counter() - wall0, 1e-9)
    p99 = float(np.percentile(latencies, 99)) * 1000 if latencies else math.inf
    expected = count * cams.frames
    ok = len(latencies) >= expected and p99 < 1000.0 / fps
    per_frame = 1000 * cpu / max(len(latencies), 1)
    return Trial(
        count, expected, len(latencies), round(p99, 1), round(100 * cpu / wall, 1), round(per_frame, 2), ok
    )


def search(config: PipelineConfig, cams: Cameras, out: Path, limit: int = 64) -> tuple[int, list[Trial]]:
    """The largest sustained count (0 when even one camera fails) and every trial run."""
    n = 0

    def attempt(count: int) -> Trial:
        nonlocal n
        n += 1
        result = trial(config, cams, count, out / f"t{n}")
        log.info("capacity: %d cameras: %s", count, result)
        return result

    one = attempt(1)
    trials = [one]
    if not one.ok:
        return 0, trials
    cores = os.cpu_count() or 1
    # CPU % of one camera -> how many fit in the cores; start a bit below, then raise one by one.
    guess = max(1, min(limit, int(0.8 * 100 * cores / max(one.cpu_percent, 1.0))))
    # Raise from the guess while it holds (doubling); once a count fails, bisect between the
    # largest that held and the smallest that failed.
    best, failed = 1, limit + 1
    count = max(2, guess)
    while best + 1 < failed:
        result = attempt(count)
        trials.append(result)
        if result.ok:
            best = count
            count = min(count * 2, failed - 1, limit) if failed > limit else (best + failed) // 2
        else:
            failed = count
            count = (best + failed) // 2
        if count <= best:
            break
    return best, trials


def cameras_for(source: SourceConfig, fps: float, seconds: float | None, lockstep: bool = False) -> Cameras:
    """What the cameras play, from the file itself: its frame rate, frame count and length."""
    from pipeline.sources import open_source

    reader = open_source(source.model_copy(update={"realtime": False, "start_s": 0.0}))
    info = reader.info
    reader.close()
    every = max(1, round(info.fps / fps)) if info.fps else 1
    frames = int(seconds * fps) if seconds else max(1, (info.frames or int(30 * fps)) // every)
    # only a file of known length can be started part-way (a synthetic source or folder cannot)
    duration = info.frames / info.fps if info.kind == "file" and info.frames and not lockstep else None
    return Cameras(str(source.uri), fps, every, frames, duration)


def run(
    config: PipelineConfig, fps: float, seconds: float | None, limit: int = 64, lockstep: bool = False
) -> list[dict[str, Any]]:
    """Rows for the gated config and the ungated one (same input, same run), with the ratio."""
    cams = cameras_for(config.sources[0], fps, seconds, lockstep)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vigil-capacity-") as tmp:
        for name, cfg in (("gated", config), ("not gated", ungated(config))):
            best, trials = search(cfg, cams, Path(tmp) / name, limit)
            at = next((t for t in trials if t.cameras == best and t.ok), None)
            cost = trials[0].cpu_ms_per_frame  # one camera
            rows.append(
                {
                    "config": name,
                    "cameras": best,
                    "cpu_ms_per_frame": cost,
                    # what the cores would hold if nothing else ran: robust to other load on the machine
                    "cameras_by_cpu": round((os.cpu_count() or 1) * 1000 / (cost * fps), 1) if cost else None,
                    "cpu_percent": at.cpu_percent if at else None,
                    "p99_ms": at.p99_ms if at else None,
                    "start": cams.mode,
                    "trials": [asdict(t) for t in trials],
                }
            )
    base, cost = rows[1]["cameras"], rows[1]["cpu_ms_per_frame"]
    rows[0]["x_not_gated"] = round(rows[0]["cameras"] / base, 2) if base else None
    rows[0]["x_not_gated_by_cpu"] = (
        round(cost / rows[0]["cpu_ms_per_frame"], 2) if rows[0]["cpu_ms_per_frame"] else None
    )
    rows[1]["x_not_gated"] = rows[1]["x_not_gated_by_cpu"] = 1.0
    return rows


def format_rows(rows: list[dict[str, Any]], fps: float, frames_note: str) -> str:
    from benchmarks.table import format_table

    columns = ["config", "cameras", "x_not_gated", "cpu_percent", "p99_ms"]
    columns += ["cpu_ms_per_frame", "cameras_by_cpu", "x_not_gated_by_cpu"]
    table = format_table(rows, columns)
    tried = "\n".join(
        f"  {r['config']}: "
        + ", ".join(
            f"{t['cameras']} {'ok' if t['ok'] else 'FAIL'} ({t['frames_out']}/{t['frames_expected']} frames, "
            f"p99 {t['p99_ms']} ms, CPU {t['cpu_percent']} %)"
            for t in r["trials"]
        )
        for r in rows
    )
    start = (
        "cameras in lockstep: every copy shows the same frame at the same moment (the worst case for gating)"
        if rows and rows[0].get("start") == "lockstep"
        else "camera i of N starts i/N into the file (real cameras are not synchronised; --lockstep: all at 0)"
    )
    return (
        f"cameras at {fps:g} fps, {frames_note}, no drops and p99 < {1000 / fps:.0f} ms\n"
        f"{start}\n{table}\ntrials:\n{tried}"
    )
