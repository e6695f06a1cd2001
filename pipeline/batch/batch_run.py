"""`vigil batch`: one pipeline run per recorded file, in a local process pool or as Ray tasks,
with a progress bar across files, resumable outputs and an aggregate `batch.json`."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.batch.inputs import BatchInput, expand_inputs
from pipeline.batch.job import FileJob, FileResult
from pipeline.batch.manifest import config_hash, is_complete
from pipeline.config import PipelineConfig
from pipeline.errors import ConfigError
from pipeline.outputs import prepare_output_dir, write_atomic

# Threads per run when the config sets none. One pipeline run already keeps both cores of a
# small machine busy, but per file it also spends time that uses one core or none (process and
# model start-up, opening the file, flushing outputs): two 1-thread runs side by side measured
# faster than one 2-thread run after another (`vigil bench batch`, README).
THREADS_PER_RUN = 1
BATCH_FILE = "batch.json"
SAVE_EVERY_S = 2.0  # batch.json is rewritten whole: not after every one of thousands of files


@dataclass
class BatchOptions:
    """How a batch runs. workers: local processes (default: the cores / threads per run);
    ray: a Ray cluster address ("auto" for the one this machine is in) instead of local
    processes; resume: skip files whose outputs are complete for this config and input;
    retries: Ray retries of a file that failed or whose worker died; quiet: no progress bar."""

    output: Path
    workers: int | None = None
    ray: str | None = None
    resume: bool = False
    retries: int = 2
    quiet: bool = False


@dataclass
class BatchReport:
    """What a batch did: one row per file (as in batch.json) and the exit code."""

    rows: list[FileResult]
    exit_code: int
    summary: dict[str, Any]


def plan_threads(config: PipelineConfig, options: BatchOptions, cores: int) -> tuple[int, int]:
    """(parallel runs, threads per run) so that runs x threads fit the cores (locally)."""
    if options.workers:
        return options.workers, config.threads or max(1, cores // options.workers)
    threads = config.threads or THREADS_PER_RUN
    return max(1, cores // threads), threads


def _check_paths(items: list[BatchInput], root: Path) -> None:
    """A file's output folder must neither be an input nor hold one (a redo clears it)."""
    inputs = {i.path for i in items}
    holders = {parent for p in inputs for parent in p.parents}  # folders that hold an input
    for item in items:
        folder = item.output_dir(root).resolve()
        if folder in inputs or (folder.exists() and not folder.is_dir()):
            raise ConfigError(f"output {folder}: is a file (an input?); choose another --output")
        if folder in holders:
            raise ConfigError(f"output {folder} would hold an input; choose another --output")


class _StopOnSignal:
    """First Ctrl-C/SIGTERM: start no more files, let running ones drain. Second: stop now."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


def _totals(rows: list[FileResult], seconds: float) -> dict[str, Any]:
    ran = [r for r in rows if r.status not in ("skipped", "pending")]
    frames = sum(r.frames for r in ran)
    counts = {
        s: sum(r.status == s for r in rows) for s in ("completed", "skipped", "failed", "stopped", "pending")
    }
    return {
        "files_total": len(rows),
        **counts,
        "frames": frames,
        "seconds": round(seconds, 3),
        "files_per_s": round(len(ran) / seconds, 3) if seconds > 0 else None,
        "fps": round(frames / seconds, 2) if seconds > 0 else None,
    }


def _exit_code(rows: list[FileResult], interrupted: bool) -> int:
    if interrupted:
        return 130
    failed = [r for r in rows if r.status not in ("completed", "skipped")]
    return (failed[0].exit_code or 1) if failed else 0


def run_batch(config: PipelineConfig, inputs: list[str], options: BatchOptions) -> BatchReport:
    """Run `config` on every file INPUTS name; writes each file's outputs under
    `options.output/<relative path>/` and `batch.json` (rewritten after every file)."""
    items = expand_inputs(inputs)
    root = options.output.resolve()
    _check_paths(items, root)
    prepare_output_dir(root)
    chash = config_hash(config)
    runs, threads = plan_threads(config, options, os.cpu_count() or 1)
    batch_id = uuid.uuid4().hex
    rows = [FileResult(str(i.path), str(i.output_dir(root)), "pending") for i in items]
    todo: list[int] = []
    for n, item in enumerate(items):
        if options.resume and is_complete(item.output_dir(root), chash, item.path):
            rows[n] = _skipped(rows[n])
        else:
            todo.append(n)
    jobs = [FileJob(rows[n].input, rows[n].output, config, chash, threads, batch_id) for n in todo]
    header = {
        "config_sha256": chash,
        "mode": f"ray {options.ray}" if options.ray else "local",
        "parallel_runs": None if options.ray else runs,
        "threads_per_run": threads,
        "batch_id": batch_id,
    }
    started = time.monotonic()

    def save(interrupted: bool = False) -> dict[str, Any]:
        summary = {**header, "interrupted": interrupted, **_totals(rows, time.monotonic() - started)}
        write_atomic(
            root / BATCH_FILE, json.dumps({**summary, "files": [r.to_dict() for r in rows]}, indent=2)
        )
        return summary

    save()
    saved = time.monotonic()
    with _StopOnSignal() as signals, _bar(len(items), len(items) - len(todo), options.quiet) as bar:
        bar.set_postfix_str("? frames/s", refresh=False)
        for index, result in _execute(jobs, runs, options, signals.stop):
            rows[todo[index]] = result
            frames = sum(r.frames for r in rows if r.status not in ("skipped", "pending"))
            now = time.monotonic()
            bar.set_postfix_str(f"{frames / max(now - started, 1e-9):.1f} frames/s", refresh=False)
            bar.update(1)
            if now - saved >= SAVE_EVERY_S:
                save()
                saved = now
        interrupted = signals.stop.is_set()
    summary = save(interrupted)
    return BatchReport(rows, _exit_code(rows, interrupted), summary)


def _execute(
    jobs: list[FileJob], runs: int, options: BatchOptions, stop: threading.Event
) -> Iterator[tuple[int, FileResult]]:
    if not jobs:
        return iter(())
    if options.ray:
        from pipeline.batch.ray_tasks import run_on_ray  # ray is an extra: imported only here

        return run_on_ray(jobs, options.ray, options.retries, stop)
    from pipeline.batch.local import run_local

    return run_local(jobs, runs, stop)


def _skipped(row: FileResult) -> FileResult:
    """A file complete from an earlier batch: its figures from its own summary.json."""
    try:
        summary = json.loads((Path(row.output) / "summary.json").read_text())
    except (OSError, ValueError):
        summary = {}
    return FileResult(
        row.input, row.output, "skipped", exit_code=0, frames=int(summary.get("frames") or 0),
        fps=summary.get("fps"), seconds=float(summary.get("duration_s") or 0.0),
    )  # fmt: skip


def _bar(total: int, done: int, quiet: bool) -> tqdm[Any]:
    return tqdm(
        total=total,
        initial=done,
        unit="file",
        bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} files [{elapsed}<{remaining}, {postfix}]",
        disable=quiet or not sys.stderr.isatty(),
        file=sys.stderr,
        dynamic_ncols=True,
    )
