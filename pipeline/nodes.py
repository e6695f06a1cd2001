"""Placement of a stage: one thread, or a pool of worker threads/processes merged back in order.

`StageNode` runs a stage in one thread between its input link and its output links.
`PoolNode` runs `workers` replicas (threads, or spawned processes with ipc links):
a dispatcher stamps every message with a ticket and gives it to the least busy worker,
a collector puts results back into ticket order. A worker process that dies is restarted and
the messages it held are sent again, so a crash does not lose frames of a recorded file; a
message that keeps killing workers is passed on unprocessed, marked with the error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pipeline.config import StageConfig
from pipeline.errors import StageError
from pipeline.executor import StageExecutor, serve
from pipeline.frame import Frame
from pipeline.metrics import StageMetrics
from pipeline.stage import StageContext, get_kind
from pipeline.transport import LinkReceiver, LinkSender, Stopped
from pipeline.wire import Control, Envelope, Message

log = logging.getLogger("vigil.runner")
MAX_ATTEMPTS = 3  # deliveries of one message before it is passed on unprocessed
# Deaths in a row without a finished message before a worker slot is given up: the first death
# names no culprit (several messages were in flight), then the culprit may kill MAX_ATTEMPTS more.
MAX_RESTARTS = MAX_ATTEMPTS + 1


class Node:
    """Common surface the runner uses."""

    cfg: StageConfig
    metrics: StageMetrics
    receiver: LinkReceiver
    ready: threading.Event
    failure: str | None
    failure_code: int

    def start(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...

    def alive(self) -> bool: ...


def _fan_out(
    outputs: list[LinkSender], metrics: StageMetrics, stop: threading.Event
) -> Callable[[list[Message], int], None]:
    def emit(msgs: list[Message], _ticket: int) -> None:
        for m in msgs:
            if isinstance(m, Frame):
                metrics.frame_out(m.timings.get(metrics.stage_id))
                if metrics.stage_id in m.errors:
                    metrics.error()
            for out in outputs:
                out.send(m, stop)

    return emit


class StageNode(Node):
    """One stage instance in one thread."""

    def __init__(
        self,
        cfg: StageConfig,
        context: StageContext,
        receiver: LinkReceiver,
        outputs: list[LinkSender],
        sources: set[str],
        abort: threading.Event,
        on_fatal: Callable[[str], None],
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.cfg, self.context, self.receiver, self.outputs = cfg, context, receiver, outputs
        self.sources, self.abort, self.on_fatal, self.on_stop = sources, abort, on_fatal, on_stop
        self.metrics = StageMetrics(cfg.id, cfg.kind)
        self.ready = threading.Event()
        self.failure: str | None = None
        self.failure_code = StageError.exit_code
        self.thread = threading.Thread(target=self._run, name=f"stage-{cfg.id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        stage = None
        try:
            stage = get_kind(self.cfg.kind)(self.cfg.options, self.context)
            stage.setup()
        except Exception as exc:
            self.failure = f"stage {self.cfg.id} ({self.cfg.kind}) could not start: {exc}"
            self.failure_code = getattr(exc, "exit_code", StageError.exit_code)
            self.ready.set()
            if stage is not None:
                _close(stage)
            return
        self.ready.set()
        executor = StageExecutor(stage, self.cfg.on_error, self.cfg.batch, self.on_fatal, self.on_stop)
        emit = _fan_out(self.outputs, self.metrics, self.abort)
        counting = _CountingReceiver(self.receiver, self.metrics)
        try:
            serve(executor, counting, emit, self.abort, until_sources=set(self.sources))  # type: ignore[arg-type]
        except Stopped:
            pass
        except Exception as exc:  # a bug in the engine or a stage hook: stop the run, keep the output
            log.exception("stage %s crashed", self.cfg.id)
            self.on_fatal(f"stage {self.cfg.id} crashed: {exc}")
        finally:
            _close(stage)
            for out in self.outputs:
                out.close(linger_ms=0 if self.abort.is_set() else 2000)
            self.receiver.close()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def alive(self) -> bool:
        return self.thread.is_alive()


class _CountingReceiver:
    """A receiver that counts the frames handed to the stage."""

    def __init__(self, inner: LinkReceiver, metrics: StageMetrics) -> None:
        self.inner, self.metrics = inner, metrics

    def recv(self, timeout_ms: int = 100) -> Envelope | None:
        env = self.inner.recv(timeout_ms)
        if env is not None and isinstance(env.message, Frame):
            self.metrics.frame_in()
        return env


def _close(stage: Any) -> None:
    try:
        stage.close()
    except Exception as exc:
        log.error("stage %s failed to close: %s", getattr(stage, "id", "?"), exc)


def run_worker(spec: dict[str, Any], stop: Any) -> None:
    """Body of a pool worker (thread or process): build the stage, report ready, serve."""
    from pipeline.frame import SourceInfo
    from pipeline.transport import context as zmq_context

    ctx = zmq_context()
    results = LinkSender(spec["out"], "lossless", spec["capacity"], ctx=ctx)
    inbox = LinkReceiver(spec["in"], "lossless", spec["capacity"], ctx=ctx, bind=False)
    wid = spec["wid"]
    stage = None
    try:
        cls = get_kind(spec["kind"])
        context = StageContext(
            spec["id"],
            output_dir=spec["output_dir"],
            threads=spec["threads"],
            sources={k: SourceInfo(**v) for k, v in spec["sources"].items()},
        )
        stage = cls(cls.Options.model_validate(spec["options"]), context)
        stage.setup()
    except Exception as exc:
        code = getattr(exc, "exit_code", StageError.exit_code)
        results.send(
            Control("failed", {"wid": wid, "error": f"{type(exc).__name__}: {exc}", "code": code}), origin=wid
        )
        results.close()
        inbox.close()
        return
    results.send(Control("ready", {"wid": wid}), origin=wid)
    executor = StageExecutor(stage, spec["on_error"], spec["batch"])

    def emit(msgs: list[Message], ticket: int) -> None:
        if not msgs:
            results.send(Control("none", {}), stop, ticket=ticket, origin=wid)
        for m in msgs:
            results.send(m, stop, ticket=ticket, parts=len(msgs), origin=wid)

    try:
        serve(executor, inbox, emit, stop)  # type: ignore[arg-type]
    except Stopped:
        pass
    finally:
        _close(stage)
        results.close()
        inbox.close()


def _process_main(spec: dict[str, Any], stop: Any) -> None:
    """Entry point of a spawned worker process."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent drains on Ctrl-C and tells us to stop
    logging.basicConfig(
        level=spec.get("log_level", logging.WARNING), format="%(levelname)s %(name)s: %(message)s"
    )
    import cv2

    cv2.setNumThreads(spec["threads"])
    run_worker(spec, stop)
