"""Build the graph of a pipeline and run it: sources -> stages, with a supervisor.

The runner owns every thread, process and socket. It opens the sources first (a bad source
fails before anything starts), sets every stage up (a missing model fails before the first
frame), then starts capturing. Sources can be added to and removed from a running pipeline
(`add_source`, `remove_source`): a removed source ends its stream like a file that ended, so
every stage flushes it and sinks close its files. When every source has ended (and the run is
not kept open for more), a `stop` control goes through the graph and each node exits after
passing it on. Ctrl-C/SIGTERM drains; a second signal stops at once (sinks still close). A
run where a stage holds work and nothing moves for `links.stall_timeout_s` is stopped with an
error instead of hanging; a camera that is reconnecting is not a stall.
"""

from __future__ import annotations

import logging
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config import MAX_SOURCES, PipelineConfig, SourceConfig
from pipeline.curve import CurveKeys, Gatekeeper
from pipeline.errors import ConfigError, StageError, VigilError
from pipeline.frame import Frame, SourceInfo
from pipeline.graph import Graph, build_graph
from pipeline.node import RunHooks, StageNode
from pipeline.outputs import check_inputs_kept, prepare_output_dir
from pipeline.progress import Progress
from pipeline.source_run import SourceRun
from pipeline.sources import open_source
from pipeline.status import RunStatus, StageStatus
from pipeline.summary import RunFacts, RunResult, build_summary
from pipeline.transport import (
    LinkSender,
    LinkStats,
    Stopped,
    context,
    secure_tcp,
)
from pipeline.watchdog import StallWatchdog
from pipeline.wire import Control, Message, StreamEnd

__all__ = ["RunResult", "Runner"]

log = logging.getLogger("vigil.runner")
LEAF_QUEUE = 64  # leaf messages waiting for the supervisor (backpressure beyond that)


class Runner:
    """Runs one pipeline. `run()` blocks until the sources end (or the run is stopped).

    keep_open: keep running when every source has ended (sources come and go through
        `add_source`/`remove_source`; the run ends on `request_stop`).
    on_result: called with every frame that leaves the pipeline (the first leaf stage), in
        the supervising thread; it may block (backpressure).
    """

    def __init__(
        self,
        config: PipelineConfig,
        output_dir: str | Path = "out",
        quiet: bool = False,
        *,
        keep_open: bool = False,
        on_result: Callable[[Frame], None] | None = None,
    ) -> None:
        if not config.sources and not keep_open:
            raise ConfigError("no source: give one in the file (sources:) or with --source")
        self.config, self.output_dir, self.quiet = config, Path(output_dir), quiet
        self.keep_open, self.on_result = keep_open, on_result
        self.abort = threading.Event()  # stop now
        self.failures: list[str] = []  # every failure; the first one decides the exit code
        self.failure_code = 0
        self.stop_requested = False
        self._sources: dict[str, SourceRun] = {}
        self._infos: dict[str, SourceInfo] = {}  # shared with in-process stage contexts
        self._leaf_messages: queue.Queue[tuple[str, Message]] = queue.Queue(LEAF_QUEUE)
        self._graph: Graph | None = None
        self._accepting = threading.Event()  # set while sources may be added
        self._closing = False
        self._processing_started: float | None = None
        self._signals = 0
        self._gate: Gatekeeper | None = None  # CURVE: who may connect to the tcp links
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------ control
    @property
    def failure(self) -> str | None:
        return self.failures[0] if self.failures else None

    def request_stop(self) -> None:
        """Drain: every source ends its stream, stages flush, sinks close."""
        with self._lock:
            self.stop_requested = True
        self._stop_captures()

    def _stop_captures(self) -> None:
        with self._lock:
            for src in self._sources.values():
                src.stop.set()

    def stop_now(self) -> None:
        self.request_stop()
        self.abort.set()

    def _fatal(self, message: str, code: int = StageError.exit_code) -> None:
        with self._lock:
            self.failures.append(message)
            if len(self.failures) == 1:
                self.failure_code = code
        self.request_stop()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals += 1
        if self._signals == 1:
            name = signal.Signals(signum).name
            log.warning("%s: draining (finishing frames in flight, closing outputs); again to stop now", name)
            self.request_stop()
        else:
            log.warning("stopping now")
            self.stop_now()

    # ------------------------------------------------------------------------------ sources
    def add_source(self, cfg: SourceConfig, timeout_s: float = 60.0) -> SourceInfo:
        """Open a source and start it in the running pipeline; returns what it announced.

        Raises ConfigError for an id in use or a run that is ending, SourceError when it cannot
        be opened. Waits up to `timeout_s` for the pipeline to be ready.
        """
        if not self._accepting.wait(timeout_s):
            raise ConfigError("the pipeline is not running: cannot add a source")
        self._check_new_id(cfg.id)
        reader = open_source(cfg)  # slow for streams: outside the lock
        with self._lock:
            try:
                self._check_new_id(cfg.id)
            except ConfigError:
                reader.close()
                raise
            src = self._sources[cfg.id] = SourceRun(cfg, reader)
            self._infos[cfg.id] = reader.info
        self._start_capture(src)
        log.info("source %s added (%s)", cfg.id, reader.info.kind)
        return reader.info

    def _check_new_id(self, source_id: str) -> None:
        with self._lock:
            if self._closing or self.stop_requested or not self._accepting.is_set():
                raise ConfigError("the run is ending: cannot add a source")
            old = self._sources.get(source_id)
            if old is not None and not old.ended.is_set():
                raise ConfigError(f"source id {source_id!r} is in use")
            running = sum(1 for s in self._sources.values() if not s.ended.is_set())
            if running >= MAX_SOURCES:
                raise ConfigError(f"{running} sources are running: at most {MAX_SOURCES}")

    def remove_source(self, source_id: str, timeout_s: float | None = 30.0) -> str:
        """End a source's stream cleanly (stages flush it, sinks close its files); other sources
        go on. Returns once its end has reached every leaf stage, with how it ended."""
        with self._lock:
            src = self._sources.get(source_id)
            if src is None or src.ended.is_set():
                raise ConfigError(f"no running source {source_id!r}")
            src.removed = True
            src.stop.set()
        if not src.ended.wait(timeout_s):
            raise StageError(f"source {source_id!r} did not end within {timeout_s}s")
        return src.end or "removed"

    def addresses(self) -> dict[str, str]:
        """Where each stage's input link listens (empty until the run has built its graph)."""
        graph = self._graph
        return {} if graph is None else {n.id: n.receiver.address for n in graph.nodes}

    def source_ids(self) -> list[str]:
        """Sources of this run that have not ended yet."""
        with self._lock:
            return [sid for sid, s in self._sources.items() if not s.ended.is_set()]

    def status(self) -> RunStatus:
        """A snapshot of every source and stage, safe to call from any thread while it runs."""
        now = time.monotonic()
        with self._lock:
            sources = tuple(s.status(now) for s in self._sources.values())
            running = self._accepting.is_set() and not self._closing
        graph = self._graph
        stages: tuple[StageStatus, ...] = ()
        if graph is not None:
            stages = tuple(_stage_status(n, graph.stats[n.id]) for n in graph.nodes)
        return RunStatus(running, sources, stages, self.failure)

    def _open_sources(self) -> None:
        try:
            for cfg in self.config.sources:
                reader = open_source(cfg)
                self._sources[cfg.id] = SourceRun(cfg, reader)
                self._infos[cfg.id] = reader.info
        except VigilError:
            for src in self._sources.values():
                src.reader.close()
            raise

    def _start_capture(self, src: SourceRun) -> None:
        graph = self._graph
        assert graph is not None  # captures start after the graph is built
        src.start(
            graph.first, graph.policy, self.config.links.capacity, graph.stats[graph.nodes[0].id], self.abort
        )

    def _build(self) -> Graph:
        hooks = RunHooks(self.abort, self._fatal, self.request_stop, self._on_leaf)
        curve = self._gate.keys if self._gate else None
        return build_graph(self.config, self._infos, self.output_dir, hooks, curve)

    # ------------------------------------------------------------------------------ run
    def run(self) -> RunResult:
        started = time.time()
        prepare_output_dir(self.output_dir)  # before anything opens: a bad folder costs nothing
        check_inputs_kept(self.config, self.output_dir)
        keys = self._curve_keys()  # a bad key file fails before anything opens
        self._open_sources()
        self._gate = _secure_links(keys)
        graph = self._graph = self._build()
        restore = self._install_signals()
        try:
            for node in graph.nodes:
                node.start()
            self._wait_ready(graph.nodes)
            self._processing_started = time.time()
            self._accepting.set()
            for src in list(self._sources.values()):
                self._start_capture(src)
            self._supervise(graph)
        except VigilError as exc:
            self._fatal(str(exc), exc.exit_code)
            self.stop_now()
        finally:
            self._shutdown(graph)
            restore()
            if self._gate is not None:
                self._gate.stop()
            if keys is not None:
                secure_tcp(None)
        return self._result(graph, started)

    def _curve_keys(self) -> CurveKeys | None:
        links = self.config.links
        if links.curve is None:
            if links.insecure and links.transport == "tcp":
                log.warning("links.insecure: tcp links on %s accept anyone who can reach them", links.host)
            return None
        authorized = Path(links.curve.authorized) if links.curve.authorized else None
        return CurveKeys.load(Path(links.curve.secret_key), authorized)

    def _wait_ready(self, nodes: list[StageNode]) -> None:
        for node in nodes:
            while not node.ready.wait(0.1):
                if self.failure:  # e.g. a worker process that died before it could report
                    raise _SetupFailed(self.failure, self.failure_code or StageError.exit_code)
                if self.abort.is_set():
                    raise StageError("stopped while stages were starting")
            if node.failure:
                raise _SetupFailed(node.failure, node.failure_code)

    def _on_leaf(self, stage_id: str, msg: Message) -> None:
        """A leaf stage's output (in that stage's thread): frames of the first leaf, every end."""
        graph = self._graph
        if isinstance(msg, Control) or graph is None:
            return
        if isinstance(msg, Frame) and stage_id != graph.leaves[0]:
            return
        while not self.abort.is_set():
            try:
                self._leaf_messages.put((stage_id, msg), timeout=0.1)
                return
            except queue.Full:
                continue

    def _total(self) -> int | None:
        """Frames the run will produce, when every source is a file of known length."""
        total = 0
        for src in self._sources.values():
            if src.reader.info.live or not src.reader.info.frames:
                return None
            left = src.reader.info.frames - src.reader.start_index  # a file's start_s skips the first ones
            n = -(-left // src.cfg.every)  # frames 0, every, 2*every, ... of those are kept
            total += min(n, src.cfg.max_frames) if src.cfg.max_frames else n
        return total or None

    def _supervise(self, graph: Graph) -> None:
        watchdog = StallWatchdog(self.config.links.stall_timeout_s)
        gone = 0
        live = self.keep_open or any(s.reader.info.live for s in self._sources.values())
        with Progress(self._total(), disable=self.quiet, live=live) as bar:
            while not self.abort.is_set():
                msg: Message | None = None
                try:
                    msg = self._leaf_messages.get(timeout=0.1)[1]
                except queue.Empty:
                    pass
                if msg is not None:
                    self._count(msg, bar)
                if self._finished():
                    return
                for node in graph.nodes:
                    node.metrics.sample_queue(graph.stats[node.id].depth)
                done = sum(s.frames_done for s in self._sources.values())
                if watchdog.stalled(graph, done):
                    depths = {sid: s.depth for sid, s in graph.stats.items()}
                    self._fatal(
                        f"no frame moved for {watchdog.timeout_s:.0f}s while stages held work "
                        f"(queue depths {depths}); stopping instead of hanging",
                        6,
                    )
                    self.stop_now()
                gone = gone + 1 if msg is None and not any(n.alive() for n in graph.nodes) else 0
                if gone > 5:  # every stage thread is gone and nothing is left in flight
                    self._fatal("every stage ended before the streams did")
                    return

    def _count(self, msg: Message, bar: Progress) -> None:
        if isinstance(msg, Frame):
            src = self._sources.get(msg.source)
            if src is not None:
                src.frames_done += 1
                src.rate.frame(msg.seq)
            bar.update(1)
            if self.on_result is not None:
                self.on_result(msg)
        elif isinstance(msg, StreamEnd):
            src = self._sources.get(msg.source)
            graph = self._graph
            if src is not None and graph is not None:
                src.leaf_ends += 1
                if src.leaf_ends >= len(graph.leaves):
                    src.ended.set()

    def _finished(self) -> bool:
        """Every source has ended everywhere and no more will come: close the graph."""
        with self._lock:
            if self.keep_open and not self.stop_requested:
                return False
            if not all(s.ended.is_set() for s in self._sources.values()):
                return False
            self._closing = True
            self._accepting.clear()
            return True

    def _shutdown(self, graph: Graph) -> None:
        """Stop captures, pass the `stop` control through the graph, wait for every node."""
        self._accepting.clear()
        self._stop_captures()
        for src in self._sources.values():
            src.join(timeout=10)
        if not self.abort.is_set():
            stopper = LinkSender(graph.first, "lossless", self.config.links.capacity)
            try:
                stopper.send(Control("stop", {}), self.abort, timeout_s=10)
            except (Stopped, TimeoutError):
                self.abort.set()
            finally:
                stopper.close(linger_ms=2000)
        for node in graph.nodes:
            node.join(timeout=30)
        if graph.run_dir:
            shutil.rmtree(graph.run_dir, ignore_errors=True)

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for s, handler in old.items():
                signal.signal(s, handler)

        return restore

    def _result(self, graph: Graph, started: float) -> RunResult:
        for node in graph.nodes:
            node.metrics.drops = graph.stats[node.id].dropped
            node.metrics.invalid = graph.stats[node.id].invalid
        facts = RunFacts(
            started=started,
            processing_from=self._processing_started,
            failures=list(self.failures),
            failure_code=self.failure_code,
            aborted=self.abort.is_set(),
            stop_requested=self.stop_requested,
            output_dir=str(self.output_dir),
            links={
                "policy": graph.policy,
                "transport": graph.transport,
                "capacity": self.config.links.capacity,
                **({"curve": True, "refused": self._gate.refused} if self._gate is not None else {}),
            },
        )
        outcomes = {sid: s.outcome() for sid, s in self._sources.items()}
        return build_summary(facts, outcomes, graph.nodes)


DELIVERY_OUTCOMES = ("queued", "sent", "dropped", "failed")  # an event sink's report["delivery"]


def _stage_status(node: StageNode, link: LinkStats) -> StageStatus:
    m = node.metrics
    models = tuple(str(x.get("model")) for x in node.report.get("models", []) if isinstance(x, dict))
    delivery = node.report.get("delivery", {})
    outcomes = tuple((k, int(delivery[k])) for k in DELIVERY_OUTCOMES if isinstance(delivery.get(k), int))
    return StageStatus(
        node.id, node.cfg.kind, node.alive(), m.frames_in, m.frames_out, m.errors, m.restarts,
        link.dropped, link.depth, models, link.invalid, outcomes, m.cpu_s,
    )  # fmt: skip


def _secure_links(keys: CurveKeys | None) -> Gatekeeper | None:
    """Turn CURVE on for the tcp links this process opens, with a gatekeeper for who connects."""
    if keys is None:
        return None
    secure_tcp(keys)
    return Gatekeeper(context(), keys)


class _SetupFailed(VigilError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code
