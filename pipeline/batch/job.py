"""One file of a batch: the pipeline run on that file alone, with the engine `vigil run` uses,
its outputs in the file's own folder and its state in the folder's marker.

Runs wherever it is sent: a local worker process or a Ray task on any node (models come from
that node's VIGIL_MODELS; input and output paths must be the same there).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models.integrity import sha256_file
from pipeline.batch.manifest import Marker, State, list_outputs, read_marker
from pipeline.config import PipelineConfig, with_sources
from pipeline.errors import SourceError, VigilError
from pipeline.outputs import write_atomic

log = logging.getLogger("vigil.batch")


@dataclass(frozen=True)
class FileJob:
    """What a worker needs to run one file."""

    input: str  # absolute path
    output_dir: str  # absolute path: <batch output>/<input relative to its root>
    config: PipelineConfig  # the batch's config (its sources are replaced by `input`)
    config_sha256: str
    threads: int  # the run's thread budget (config.threads when it sets one)
    batch_id: str  # attempts of the same batch are counted in the marker


@dataclass
class FileResult:
    """How one file went; a row of batch.json."""

    input: str
    output: str
    status: str  # completed | failed | stopped | aborted (the run's) | skipped | pending
    exit_code: int | None = None
    frames: int = 0
    fps: float | None = None
    seconds: float = 0.0
    error: str | None = None
    host: str | None = None
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FileFailed(Exception):
    """A file's run ended in error; carries its result (Ray retries the task on it)."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result)
        self.result = result

    def __str__(self) -> str:
        return f"{self.result.get('input')}: {self.result.get('error') or self.result.get('status')}"


def _clear(folder: Path) -> None:
    """An earlier, incomplete attempt's files go: a redo must not mix with them."""
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def run_file(job: FileJob) -> FileResult:
    """Run the pipeline on one file; never raises for a failed run (the result says how it
    went). The marker says `running` from the start and `complete` only once every output and
    summary.json are written."""
    from pipeline.runner import Runner  # heavy: imported where the run happens

    started = time.monotonic()
    folder = Path(job.output_dir)
    result = FileResult(job.input, job.output_dir, "failed", host=os.uname().nodename)
    marker: Marker | None = None
    try:
        input_sha = sha256_file(Path(job.input))
        before = read_marker(folder)
        attempt = before.attempt + 1 if before is not None and before.batch_id == job.batch_id else 1
        result.attempts = attempt
        _clear(folder)
        marker = Marker("running", job.input, job.config_sha256, input_sha, job.batch_id, attempt)
        marker.write(folder)
        config = with_sources(job.config, [job.input]).model_copy(update={"threads": job.threads})
        run = Runner(config, output_dir=folder, quiet=True).run()
    except (VigilError, OSError) as exc:  # a file that cannot be read or run: a row, not a crash
        result.exit_code = exc.exit_code if isinstance(exc, VigilError) else SourceError.exit_code
        result.error = str(exc)
        return _ended(result, marker, folder, "failed", started)
    except KeyboardInterrupt:  # stopped before the run could drain (Ray's cancel): not complete
        result.status, result.exit_code = "stopped", 130
        return _ended(result, marker, folder, "partial", started)
    summary = run.summary
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2))
    result.status, result.exit_code, result.error = run.status, run.exit_code, summary.get("error")
    result.frames, result.fps = int(summary.get("frames") or 0), summary.get("fps")
    marker.status, marker.exit_code = run.status, run.exit_code
    marker.state = (
        "complete" if run.status == "completed" else ("failed" if run.status == "failed" else "partial")
    )
    marker.outputs = list_outputs(folder)
    marker.write(folder)  # last: `complete` is only ever said of a folder that is
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _ended(
    result: FileResult, marker: Marker | None, folder: Path, state: State, started: float
) -> FileResult:
    """A run that ended before its outputs: the folder's marker says so too, not `running`."""
    result.seconds = round(time.monotonic() - started, 3)
    if marker is not None:
        marker.state, marker.status, marker.exit_code = state, result.status, result.exit_code
        with contextlib.suppress(VigilError):
            marker.write(folder)
    return result


def run_file_or_raise(job: FileJob) -> dict[str, Any]:
    """`run_file` for an engine that retries on exceptions (Ray): a failed run raises FileFailed."""
    result = run_file(job)
    if result.status == "failed":
        raise FileFailed(result.to_dict())
    return result.to_dict()
