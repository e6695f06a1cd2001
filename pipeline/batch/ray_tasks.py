"""Ray mode of `vigil batch`: one Ray task per file on a Ray cluster (the `ray` extra).

Each task asks for `num_cpus` = the run's thread budget, so Ray places as many runs on a node
as its CPUs allow. A task whose worker dies (killed, node lost) or whose run fails is retried
by Ray (`max_retries`, `retry_exceptions`); a file that fails every time comes back as a failed
row of batch.json, never as the end of the batch. Every node reads the models from its own
VIGIL_MODELS and the inputs and outputs at the same paths as the driver (a shared filesystem).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.batch.job import FileFailed, FileJob, FileResult, run_file_or_raise
from pipeline.batch.manifest import read_marker
from pipeline.errors import ConfigError
from pipeline.installation import pip_install_extra

DRAIN_S = 60.0  # after Ctrl-C: how long running tasks get to drain before they are abandoned


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--ray needs the ray extra: {pip_install_extra('ray')}") from None
    return ray


def _row(job: FileJob, ray: Any, exc: Exception) -> FileResult:
    """The failed row for a task that gave up: the run's own result when it ran to an error."""
    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else exc
    if isinstance(cause, FileFailed):
        return FileResult(**cause.result)
    return FileResult(
        job.input, job.output_dir, "failed", exit_code=1, error=f"{type(cause).__name__}: {cause}"
    )


def run_on_ray(
    jobs: list[FileJob], address: str, retries: int, stop: threading.Event
) -> Iterator[tuple[int, FileResult]]:
    """Run every job as a Ray task on the cluster at `address` ("auto": the one this machine
    belongs to); yields (job index, result) as each ends. Once `stop` is set, tasks not started
    are cancelled and running ones are asked to drain."""
    ray = _ray()
    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as exc:  # no cluster there: one line, not a traceback
            raise ConfigError(
                f"--ray {address}: no Ray cluster to join (start one with `ray start --head`): {exc}"
            ) from None
    try:
        task = ray.remote(run_file_or_raise)
        refs = {
            task.options(num_cpus=job.threads, max_retries=retries, retry_exceptions=[FileFailed]).remote(
                job
            ): i
            for i, job in enumerate(jobs)
        }
        pending = list(refs)
        deadline: float | None = None
        while pending:
            if stop.is_set() and deadline is None:
                deadline = time.monotonic() + DRAIN_S
                for ref in pending:
                    ray.cancel(ref)  # not started: dropped; running: interrupted (drains)
            if deadline is not None and time.monotonic() > deadline:
                return
            done, pending = ray.wait(pending, num_returns=1, timeout=0.2)
            for ref in done:
                yield refs[ref], _collect(ray, ref, jobs[refs[ref]])
    finally:
        if connected_here:
            ray.shutdown()


def _collect(ray: Any, ref: Any, job: FileJob) -> FileResult:
    try:
        return FileResult(**ray.get(ref))
    except ray.exceptions.TaskCancelledError:  # a running one drains; this one never got going
        started = read_marker(Path(job.output_dir)) is not None
        if started:
            return FileResult(job.input, job.output_dir, "stopped", exit_code=130, error="cancelled")
        return FileResult(job.input, job.output_dir, "pending")
    except Exception as exc:  # retries used up: the file failed, the batch goes on
        return _row(job, ray, exc)
