"""A stage worker: build the stage from a typed spec, report, serve its link until told to stop.

The same body runs in a pool worker thread and in a spawned worker process (which gets a
pickled copy of the spec), so a stage behaves identically whatever its placement.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.curve import CurveKeys
from pipeline.errors import StageError
from pipeline.executor import StageExecutor, StopSignal, serve
from pipeline.frame import SourceInfo
from pipeline.stage import Stage, StageContext, get_kind
from pipeline.transport import LinkReceiver, LinkSender, Stopped, link_token, secure_tcp, use_link_token
from pipeline.transport import context as zmq_context
from pipeline.wire import Control, Message

log = logging.getLogger("vigil.runner")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything needed to build one instance of a stage (picklable: a worker process gets a copy)."""

    stage_id: str
    kind: str
    options: dict[str, Any]  # the `with:` block as written; validated again by the worker
    on_error: str = "skip"
    batch: int = 1
    threads: int = 1
    output_dir: str = "."
    sources: dict[str, SourceInfo] = field(default_factory=dict)
    capacity: int = 4
    log_level: int = logging.WARNING
    token: str = field(default_factory=link_token)  # a worker process adopts the parent's link token
    curve: CurveKeys | None = None  # the run's CURVE keys, when its tcp links use them


@dataclass
class Startup:
    """How a node's start went: `ready` is set once every worker is up, or on the first failure."""

    ready: threading.Event = field(default_factory=threading.Event)
    failure: str | None = None
    failure_code: int = StageError.exit_code

    def fail(self, message: str, code: int) -> None:
        if self.failure is None:
            self.failure, self.failure_code = message, code
        self.ready.set()


@dataclass(frozen=True)
class WorkerLinks:
    """Where one pool worker incarnation reads its messages and writes its results."""

    wid: int  # worker incarnation: a restarted worker gets a new one
    inbox: str
    results: str


def build_stage(spec: WorkerSpec, context: StageContext | None = None) -> Stage[Any]:
    """Instantiate and set up the stage; raises what `setup()` raises (after closing the stage)."""
    cls = get_kind(spec.kind)
    if context is None:
        context = StageContext(
            spec.stage_id, output_dir=Path(spec.output_dir), threads=spec.threads, sources=dict(spec.sources)
        )
    stage = cls(cls.Options.model_validate(spec.options), context)
    try:
        stage.setup()
    except BaseException:
        close_stage(stage)
        raise
    return stage


def close_stage(stage: Stage[Any]) -> None:
    """Close a stage; a failure to close is logged, never raised (it runs in cleanup paths)."""
    try:
        stage.close()
    except Exception as exc:
        log.error("stage %s failed to close: %s", stage.id, exc)


def run_worker(spec: WorkerSpec, links: WorkerLinks, stop: StopSignal) -> None:
    """Body of a pool worker: build the stage, report ready (or failed), serve, report at the end.

    Every ticket it takes is answered on the results link (a `none` control when the stage
    dropped the frame), so the collector can restore order.
    """
    ctx = zmq_context()
    results = LinkSender(links.results, "lossless", spec.capacity, ctx=ctx)
    inbox = LinkReceiver(links.inbox, "lossless", spec.capacity, ctx=ctx, bind=False)
    wid = links.wid
    try:
        stage = build_stage(spec)
    except Exception as exc:
        code = getattr(exc, "exit_code", StageError.exit_code)
        error = f"{type(exc).__name__}: {exc}"
        results.send(Control("failed", {"wid": wid, "error": error, "code": code}), origin=wid)
        results.close()
        inbox.close()
        return
    results.send(Control("ready", {"wid": wid}), origin=wid)
    executor = StageExecutor(stage, spec.on_error, spec.batch)

    def emit(msgs: list[Message], ticket: int) -> None:
        if not msgs:
            results.send(Control("none", {}), stop, ticket=ticket, origin=wid)  # type: ignore[arg-type]
        for m in msgs:
            results.send(m, stop, ticket=ticket, parts=len(msgs), origin=wid)  # type: ignore[arg-type]

    try:
        serve(executor, inbox, emit, stop)
    except Stopped:
        pass
    finally:
        close_stage(stage)
        try:  # what the stage reported (models, files written) goes to the run summary
            results.send(Control("report", {"wid": wid, "report": dict(stage.context.report)}), timeout_s=2)
        except (TimeoutError, Stopped, TypeError, ValueError) as exc:
            log.warning("stage %s: worker report lost: %s", spec.stage_id, exc)
        results.close()
        inbox.close()


def process_main(spec: WorkerSpec, links: WorkerLinks, stop: StopSignal) -> None:
    """Entry point of a spawned worker process."""
    exit_with_parent(os.getppid())
    use_link_token(spec.token)
    secure_tcp(spec.curve)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent drains on Ctrl-C and tells us to stop
    logging.basicConfig(level=spec.log_level, format="%(levelname)s %(name)s: %(message)s")
    import cv2

    cv2.setNumThreads(spec.threads)
    run_worker(spec, links, stop)


def exit_with_parent(parent: int, every_s: float = 0.5) -> None:
    """End this process soon after `parent` dies, even by SIGKILL (which runs no cleanup in the
    parent): an orphaned worker would otherwise hold its model and sockets forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
