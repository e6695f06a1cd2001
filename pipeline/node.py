"""One stage of the graph: N >= 1 workers between its input link and its output links.

A node with one worker placed in a thread runs the stage right on its input link (no extra
hop: most stages of a pipeline are like this). Otherwise a `WorkerPool` feeds `workers`
threads or spawned processes and merges their results back into input order. Either way the
stage is built by `build_stage`, driven by `serve` and its results fanned out by the node, so a
stage behaves the same whatever its placement. The `stop` control that ends the graph is the
last message a node passes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import StageConfig
from pipeline.dispatch import PoolPlan, WorkerPool
from pipeline.errors import StageError
from pipeline.executor import StageExecutor, serve
from pipeline.frame import Frame
from pipeline.metrics import StageMetrics, StageSummary
from pipeline.stage import StageContext
from pipeline.transport import LinkReceiver, LinkSender, Stopped
from pipeline.wire import Envelope, Message
from pipeline.workers import Startup, WorkerSpec, build_stage, close_stage

log = logging.getLogger("vigil.runner")


@dataclass(frozen=True)
class RunHooks:
    """What a node tells the run it belongs to."""

    abort: threading.Event  # stop now: every blocking wait gives up
    on_fatal: Callable[[str, int], None]  # a failure that ends the run (message, exit code)
    on_stop: Callable[[], None]  # a stage asked the run to drain (e.g. q in a display window)
    on_leaf: Callable[[str, Message], None] | None = None  # a leaf's output: (stage id, message)


class StageNode:
    """A stage placed as `cfg.workers` threads or processes, with its metrics and report."""

    def __init__(
        self,
        cfg: StageConfig,
        spec: WorkerSpec,
        receiver: LinkReceiver,
        outputs: list[LinkSender],
        hooks: RunHooks,
        pool: PoolPlan | None = None,
    ) -> None:
        self.cfg, self.spec, self.receiver, self.outputs, self.hooks = cfg, spec, receiver, outputs, hooks
        self.metrics = StageMetrics(cfg.id, cfg.kind, placement=cfg.placement, workers=cfg.workers)
        # spec.sources is the run's own dict: sources added later are seen by in-process stages.
        self.context = StageContext(
            spec.stage_id, output_dir=Path(spec.output_dir), threads=spec.threads, sources=spec.sources
        )
        self.startup = Startup()
        self._executor: StageExecutor | None = None
        self._outputs_closed = False
        self._cpu_start: float | None = None  # set in the stage's thread (thread placement)
        self._pool: WorkerPool | None = None
        self._thread: threading.Thread | None = None
        if pool is not None:
            self._pool = WorkerPool(
                spec,
                pool,
                receiver,
                self._emit,
                self.metrics,
                self.startup,
                hooks.abort,
                on_fatal=self._fatal,
                on_report=self._merge_report,
                on_exit=self._close_outputs,
            )
        else:
            self._thread = threading.Thread(target=self._serve, name=f"stage-{cfg.id}", daemon=True)

    # ------------------------------------------------------------------------------ surface
    @property
    def id(self) -> str:
        return self.cfg.id

    @property
    def ready(self) -> threading.Event:
        return self.startup.ready

    @property
    def failure(self) -> str | None:
        return self.startup.failure

    @property
    def failure_code(self) -> int:
        return self.startup.failure_code

    @property
    def report(self) -> dict[str, Any]:
        return self.context.report

    def figures(self) -> StageSummary:
        """The stage's metrics for the summary."""
        return self.metrics.to_dict()

    def start(self) -> None:
        if self._pool is not None:
            self._pool.start()
        elif self._thread is not None:
            self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._pool is not None:
            self._pool.join(timeout)
        elif self._thread is not None and self._thread.ident is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        if self._pool is not None:
            return self._pool.alive()
        return self._thread is not None and self._thread.is_alive()

    def busy(self) -> bool:
        """Whether the stage holds work right now (a frame in process(), or answers pending)."""
        if self._pool is not None:
            return self._pool.pending() > 0
        return self._executor is not None and self._executor.busy_since is not None

    # ------------------------------------------------------------------------------ one worker
    def _serve(self) -> None:
        try:
            stage = build_stage(self.spec, self.context)
        except Exception as exc:
            code = getattr(exc, "exit_code", StageError.exit_code)
            self.startup.fail(f"stage {self.cfg.id} ({self.cfg.kind}) could not start: {exc}", code)
            self._close_outputs()
            self.receiver.close()
            return
        self.startup.ready.set()
        self._cpu_start = time.thread_time()  # this thread's CPU from here on: the stage at work
        self._executor = StageExecutor(
            stage, self.cfg.on_error, self.cfg.batch, on_fatal=self.hooks.on_fatal, on_stop=self.hooks.on_stop
        )
        try:
            stop = serve(
                self._executor, _CountingReceiver(self.receiver, self.metrics), self._emit, self.hooks.abort
            )
            if stop is not None:
                self._emit([stop], -1)
        except Stopped:
            pass
        except Exception as exc:  # a bug in the engine or a stage hook: stop the run, keep the output
            log.exception("stage %s crashed", self.cfg.id)
            self._fatal(f"stage {self.cfg.id} crashed: {exc}")
        finally:
            close_stage(stage)
            if self._cpu_start is not None:  # closing counts too (an encoder flushes its last frames)
                self.metrics.cpu_s = time.thread_time() - self._cpu_start
            self._close_outputs()
            self.receiver.close()

    # ------------------------------------------------------------------------------ results
    def _emit(self, msgs: list[Message], _ticket: int) -> None:
        """Count, pass on to every child, and tell the run what a leaf produced."""
        if self._cpu_start is not None:  # a stage in one thread: _emit runs in that thread
            self.metrics.cpu_s = time.thread_time() - self._cpu_start
        for m in msgs:
            if isinstance(m, Frame):
                self.metrics.frame_out(m.timings.get(self.cfg.id))
                if self.cfg.id in m.errors:
                    self.metrics.error()
            for out in self.outputs:
                out.send(m, self.hooks.abort)
            if self.hooks.on_leaf is not None:
                self.hooks.on_leaf(self.cfg.id, m)

    def _close_outputs(self) -> None:
        if self._outputs_closed:
            return
        self._outputs_closed = True
        for out in self.outputs:
            out.close(linger_ms=0 if self.hooks.abort.is_set() else 2000)

    def _fatal(self, message: str) -> None:
        self.hooks.on_fatal(message, StageError.exit_code)

    def _merge_report(self, report: dict[str, Any]) -> None:
        """A pool worker's report: the first worker's value of a key wins, lists gain new items."""
        mine = self.context.report
        for key, value in report.items():
            if key not in mine:
                mine[key] = value
            elif isinstance(mine[key], list) and isinstance(value, list):
                mine[key].extend(v for v in value if v not in mine[key])


class _CountingReceiver:
    """A receiver that counts the frames handed to the stage."""

    def __init__(self, inner: LinkReceiver, metrics: StageMetrics) -> None:
        self.inner, self.metrics = inner, metrics

    def recv(self, timeout_ms: int = 100) -> Envelope | None:
        env = self.inner.recv(timeout_ms)
        if env is not None and isinstance(env.message, Frame):
            self.metrics.frame_in()
        return env
