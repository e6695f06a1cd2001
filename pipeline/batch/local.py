"""Local mode of `vigil batch`: a process pool on this machine, one pipeline run per file.

Workers are spawned (never forked: a run starts threads and ZeroMQ contexts) and reused from
file to file, so imports happen once per worker, not once per file. An idle worker ignores
SIGINT; a worker that is running a file drains it on Ctrl-C as `vigil run` does (the terminal
signals the whole process group), so its outputs end complete or marked partial.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from pipeline.batch.job import FileJob, FileResult, run_file

LOST = "not run: a worker process died and broke the pool (rerun with --resume)"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(jobs: list[FileJob], workers: int, stop: threading.Event) -> Iterator[tuple[int, FileResult]]:
    """Run every job in a pool of `workers` processes; yields (job index, result) as each ends.
    Once `stop` is set no new file starts; files already running finish (or drain)."""
    context = multiprocessing.get_context("spawn")
    queued = iter(enumerate(jobs))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_ignore_sigint) as pool:
        running: dict[Future[FileResult], int] = {}
        lost: list[tuple[int, FileJob]] = []  # not started because a worker died

        def fill() -> None:
            # One file per worker at a time: the pool would queue more itself, and a queued file
            # can no longer be held back after Ctrl-C.
            while len(running) < workers and not stop.is_set():
                item = next(queued, None)
                if item is None:
                    return
                try:
                    running[pool.submit(run_file, item[1])] = item[0]
                except BrokenProcessPool:
                    lost.extend([item, *queued])
                    return

        fill()
        while running:
            done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            for f in done:
                index = running.pop(f)
                yield index, _result(f, jobs[index])
            fill()
        for index, job in lost:
            yield index, FileResult(job.input, job.output_dir, "failed", exit_code=1, error=LOST)


def _result(future: Future[FileResult], job: FileJob) -> FileResult:
    try:
        return future.result()
    except Exception as exc:  # the worker process died (killed, out of memory): that file failed
        return FileResult(job.input, job.output_dir, "failed", exit_code=1, error=f"worker died: {exc}")
