"""Use vigil from Python: run a pipeline (a file, or a config built in code) with the same
engine as `vigil run`, and take its result frames as they come.

    from pipeline import Pipeline

    with Pipeline.from_file("configs/faces_haar.yaml", sources=["clip.mp4"], output_dir="out") as run:
        for frame in run:
            print(frame.source, frame.seq, len(frame.detections))
    print(run.summary["fps"])

Frames are those leaving the pipeline's first leaf stage, in order, with their image,
detections and events. The run goes on in a background thread and waits while the loop body
works (nothing is dropped on a lossless pipeline). Leaving the loop early, or the `with`
block, drains the run: sources end, stages flush, sinks close their files.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.config import PipelineConfig, config_from_dict, load_config, source_from_dict, with_sources
from pipeline.errors import VigilError
from pipeline.frame import Frame, SourceInfo
from pipeline.runner import Runner
from pipeline.summary import RunResult


class RunFailed(VigilError):
    """The run ended in error (a stage that could not start, a source that broke, ...)."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result.summary.get("error") or f"the run {result.status}")
        self.result = result
        self.exit_code = result.exit_code


class Pipeline:
    """One run of a pipeline; iterate it for its frames, or call `run()` to just run it.

    buffer: result frames held for the loop before the pipeline waits for it.
    keep_open: keep running when every source has ended (add sources with `add_source`;
        end with `stop()`).
    """

    def __init__(
        self,
        config: PipelineConfig,
        output_dir: str | Path = "out",
        *,
        buffer: int = 8,
        keep_open: bool = False,
    ) -> None:
        self._frames: queue.Queue[Frame] = queue.Queue(buffer)
        self._consuming = threading.Event()  # cleared when the loop went away: stop waiting for it
        self._consuming.set()
        self.runner = Runner(config, output_dir, quiet=True, keep_open=keep_open, on_result=self._deliver)
        self.result: RunResult | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._reported = False
        self._ids = itertools.count()

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        sources: Sequence[str | int] | None = None,
        overrides: Sequence[str] = (),
        output_dir: str | Path = "out",
        **options: Any,
    ) -> Pipeline:
        """A pipeline file, with its sources replaced by `sources` and `overrides` applied
        (`["stages.faces.with.min_neighbors=6"]`, as `--set`)."""
        config = load_config(path, overrides)
        if sources:
            config = with_sources(config, sources)
        return cls(config, output_dir, **options)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, output_dir: str | Path = "out", **options: Any) -> Pipeline:
        """A pipeline written in code: the same keys as a pipeline file."""
        return cls(config_from_dict(data), output_dir, **options)

    # ------------------------------------------------------------------------------ running
    def start(self) -> Pipeline:
        """Start the run in a background thread (iterating starts it too)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vigil-pipeline", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self.runner.run()
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
        finally:
            self._done.set()

    def _deliver(self, frame: Frame) -> None:
        while self._consuming.is_set():
            try:
                self._frames.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        try:
            while True:
                try:
                    yield self._frames.get(timeout=0.1)
                except queue.Empty:
                    if self._done.is_set() and self._frames.empty():
                        break
        finally:  # also when the loop is left early: drain, never raise from here
            self._shutdown()
        self._raise_if_failed()

    def run(self) -> RunResult:
        """Run to the end without looking at the frames; returns the result (raises RunFailed)."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def stop(self, now: bool = False) -> None:
        """Drain (sources end, stages flush, sinks close); `now` stops at once."""
        if now:
            self.runner.stop_now()
        else:
            self.runner.request_stop()

    def close(self) -> None:
        """Stop the run if it is still going, wait for it, and raise RunFailed if it failed."""
        self._shutdown()
        self._raise_if_failed()

    def _shutdown(self) -> None:
        if self._thread is not None and not self._done.is_set():
            self.stop()
        self._consuming.clear()
        if self._thread is not None:
            self._thread.join()

    def _raise_if_failed(self) -> None:
        """Raise the run's error once (an exception in its thread, or a failed status)."""
        if self._reported:
            return
        self._reported = True
        if self._error is not None:
            raise self._error
        if self.result is not None and self.result.status == "failed":
            raise RunFailed(self.result)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
            return
        try:  # an error in the caller's loop wins over the run's own
            self.close()
        except VigilError:
            pass

    # ------------------------------------------------------------------------------ sources
    def add_source(self, uri: str | int, id: str | None = None, **options: Any) -> SourceInfo:
        """Add a source to the running pipeline (options as in a pipeline file's source)."""
        self.start()
        cfg = source_from_dict({"id": id or f"source{next(self._ids)}", "uri": uri, **options})
        return self.runner.add_source(cfg)

    def remove_source(self, source_id: str, timeout_s: float | None = 30.0) -> str:
        """End one source cleanly; returns how it ended."""
        return self.runner.remove_source(source_id, timeout_s)

    @property
    def summary(self) -> dict[str, Any]:
        """The run summary (as summary.json); empty until the run has ended."""
        return self.result.summary if self.result is not None else {}
