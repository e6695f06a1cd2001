"""The engine internals the benchmarks use, in one place.

The transport and pipeline benchmarks need pieces of the engine a user never touches (a raw
link, a source reader, a stage built outside a run). They reach them only through this
module, so when the engine renames one of them, this is the one file to change.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig, SourceConfig, StageConfig
from pipeline.frame import Frame, SourceInfo
from pipeline.reader import Captured, Reader
from pipeline.sources import open_source
from pipeline.stage import Stage, StageContext, get_kind
from pipeline.transport import LinkReceiver, LinkSender, Transport, endpoint

RECV_TIMEOUT_MS = 5000


@dataclass
class LinkPair:
    """Both ends of one lossless link: `send(frame)` in one thread, `recv()` in another."""

    send: Callable[[Frame], Any]
    recv: Callable[[], Any]
    close: Callable[[], None]


def open_link(transport: Transport, run_dir: str, depth: int = 4) -> LinkPair:
    """A lossless vigil link over `transport` (inproc, ipc or tcp), queue depth `depth`."""
    rx = LinkReceiver(endpoint(transport, "bench", run_dir=run_dir), "lossless", depth)
    tx = LinkSender(rx.address, "lossless", depth)

    def close() -> None:
        tx.close(0)
        rx.close()

    return LinkPair(tx.send, functools.partial(rx.recv, RECV_TIMEOUT_MS), close)


def open_reader(source: SourceConfig) -> Reader:
    """The engine's reader of one source (`read()` -> captured frame or None, `info`, `close()`)."""
    return open_source(source)


def frame_from(source: SourceInfo, seq: int, captured: Captured, wall_time: float) -> Frame:
    """The Frame the engine would make from one captured image."""
    assert captured.image is not None, "read() decodes unless told not to"
    return Frame(source.id, seq, captured.pts, wall_time, captured.image, index=captured.index)


def start_stage(config: StageConfig, output_dir: Path, source: SourceInfo) -> Stage:
    """A stage built, set up and started on one source, as the runner does it."""
    cls = get_kind(config.kind)
    stage = cls(config.options, StageContext(config.id, output_dir=output_dir, sources={source.id: source}))
    stage.setup()
    stage.start_stream(source)
    return stage


def stop_stage(stage: Stage, source: SourceInfo) -> None:
    """End the source's stream on the stage and close it."""
    stage.end_stream(source.id)
    stage.close()


def standalone_stage(kind: str, options: dict[str, Any], threads: int) -> Any:
    """A stage of `kind` set up outside any run (its `models` and `context.report` filled)."""
    cls = get_kind(kind)
    stage = cls(cls.Options(**options), StageContext(stage_id=kind, threads=threads))
    stage.setup()
    return stage


def run_pipeline(
    config: PipelineConfig, output_dir: Path, on_result: Callable[[Frame], None] | None = None
) -> dict[str, Any]:
    """One quiet run of the whole pipeline; its summary (frames, processing_s, setup_s, ...).
    `on_result` is called with every frame leaving the pipeline."""
    from pipeline.runner import Runner

    return Runner(config, output_dir=output_dir, quiet=True, on_result=on_result).run().summary


def stage_threads(config: PipelineConfig, stage_id: str) -> int:
    """The CPU threads the runner gives stage `stage_id` (its share of the run's budget)."""
    from pipeline.graph import thread_budget

    return thread_budget(config)[1][stage_id]
