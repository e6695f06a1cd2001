"""Build the graph of a pipeline and run it: sources -> stages -> terminal, with a supervisor.

The runner owns every thread, process and socket. It opens the sources first (a bad source
fails before anything starts), sets every stage up (a missing model fails before the first
frame), then starts capturing. Ctrl-C/SIGTERM drains: captures end their streams, every
stage flushes, sinks close their files. A second signal stops at once; sinks still close,
so a video written so far stays valid. A run that makes no progress for
`links.stall_timeout_s` is stopped with an error instead of hanging.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from pipeline.config import PipelineConfig, SourceConfig
from pipeline.errors import ConfigError, StageError, VigilError
from pipeline.frame import Frame, SourceInfo
from pipeline.nodes import Node, StageNode
from pipeline.pool import PoolNode
from pipeline.progress import Progress
from pipeline.sources import Reader, capture_loop, open_source
from pipeline.stage import StageContext
from pipeline.transport import LinkReceiver, LinkSender, LinkStats, Stopped, endpoint
from pipeline.wire import Message, StreamEnd

log = logging.getLogger("vigil.runner")
HEAVY_FAMILIES = ("detect", "classify", "filter")  # stages that share the CPU budget


@dataclass
class RunResult:
    status: str  # completed | stopped | failed | aborted
    exit_code: int
    summary: dict[str, Any]


class Runner:
    def __init__(self, config: PipelineConfig, output_dir: str | Path = "out", quiet: bool = False) -> None:
        if not config.sources:
            raise ConfigError("no source: give one in the file (sources:) or with --source")
        self.config, self.output_dir, self.quiet = config, Path(output_dir), quiet
        self.capture_stop = threading.Event()  # drain: captures end their streams
        self.abort = threading.Event()  # stop now
        self.failure: str | None = None
        self.failure_code = 0
        self.failures: list[str] = []  # every failure, the first one decides the exit code
        self.stop_requested = False
        self._processing_started: float | None = None  # when the first capture started
        self._signals = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ control
    def request_stop(self) -> None:
        """Drain: every source ends its stream, stages flush, sinks close."""
        self.stop_requested = True
        self.capture_stop.set()

    def stop_now(self) -> None:
        self.capture_stop.set()
        self.abort.set()

    def _fatal(self, message: str, code: int = StageError.exit_code) -> None:
        with self._lock:
            self.failures.append(message)
            if self.failure is None:
                self.failure, self.failure_code = message, code
        self.request_stop()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals += 1
        if self._signals == 1:
            log.warning(
                "%s: draining (finishing frames in flight, closing outputs); again to stop now",
                signal.Signals(signum).name,
            )
            self.request_stop()
        else:
            log.warning("stopping now")
            self.stop_now()

    # ------------------------------------------------------------------------------ build
    def _policy(self, infos: dict[str, SourceInfo]) -> str:
        policy = self.config.links.policy
        if policy == "auto":
            return "latest" if any(i.live for i in infos.values()) else "lossless"
        return policy

    def _open_sources(self) -> dict[str, tuple[SourceConfig, Reader]]:
        opened: dict[str, tuple[SourceConfig, Reader]] = {}
        try:
            for src in self.config.sources:
                opened[src.id] = (src, open_source(src))
        except VigilError:
            for _, reader in opened.values():
                reader.close()
            raise
        return opened

    def _budget(self) -> tuple[int, dict[str, int]]:
        """(OpenCV threads, threads per stage).

        OpenCV has one process-wide pool, so it gets the whole budget. Each heavy stage gets a
        share that allows about 2x oversubscription: pipeline stages are rarely busy at the same
        instant, and on 2 cores a strict split (1 thread each) measured 25-45% slower than 2 each
        (`vigil bench pipeline`, README). `threads:` on a stage or the pipeline overrides.
        """
        total = self.config.threads or os.cpu_count() or 1
        heavy = [
            s for s in self.config.stages if s.kind.split(".")[0] in HEAVY_FAMILIES
        ] or self.config.stages
        share = min(total, max(1, math.ceil(2 * total / sum(s.workers for s in heavy))))
        return total, {s.id: s.threads or share for s in self.config.stages}

    def run(self) -> RunResult:
        started = time.time()
        readers = self._open_sources()
        infos = {sid: r.info for sid, (_, r) in readers.items()}
        policy = self._policy(infos)
        links = self.config.links
        transport = "inproc" if links.transport == "auto" else links.transport
        run_dir = (
            tempfile.mkdtemp(prefix="vigil-run-")
            if transport == "ipc" or any(s.placement == "process" for s in self.config.stages)
            else None
        )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        opencv_threads, budget = self._budget()
        cv2.setNumThreads(opencv_threads)
        sources = set(infos)

        # Receivers bind first; every socket is then handed to the one thread that uses it.
        stats = {s.id: LinkStats(s.id) for s in self.config.stages}
        receivers = {
            s.id: LinkReceiver(
                endpoint(transport, s.id, links.host, run_dir), policy, links.capacity, stats[s.id]
            )
            for s in self.config.stages
        }
        terminal = LinkReceiver(endpoint(transport, "terminal", links.host, run_dir), "lossless", 64)
        children: dict[str, list[str]] = {s.id: [] for s in self.config.stages}
        for i, s in enumerate(self.config.stages[1:], start=1):
            children[self.config.parent_of(i)].append(s.id)  # type: ignore[index]
        leaves = [sid for sid, kids in children.items() if not kids]

        nodes: list[Node] = []
        for s in self.config.stages:
            outputs = [
                LinkSender(receivers[c].address, policy, links.capacity, stats[c]) for c in children[s.id]
            ]
            if not children[s.id]:
                primary = s.id == leaves[0]
                outputs.append(
                    LinkSender(terminal.address, "lossless", 64) if primary else _EndsOnly(terminal.address)
                )
            context = StageContext(
                s.id, output_dir=self.output_dir, threads=budget[s.id], sources=dict(infos)
            )
            common = (s, context, receivers[s.id], outputs, sources, self.abort, self._fatal)
            if s.workers > 1 or s.placement == "process":
                inner = "ipc" if s.placement == "process" and transport == "inproc" else transport
                nodes.append(PoolNode(*common, transport=inner, capacity=links.capacity, run_dir=run_dir))
            else:
                nodes.append(StageNode(*common, on_stop=self.request_stop))
        self._leaves = len(leaves)
        return self._execute(nodes, readers, receivers, stats, terminal, policy, transport, started, run_dir)

    # ------------------------------------------------------------------------------ execute
    def _execute(
        self,
        nodes: list[Node],
        readers: dict[str, tuple[SourceConfig, Reader]],
        receivers: dict[str, LinkReceiver],
        stats: dict[str, LinkStats],
        terminal: LinkReceiver,
        policy: str,
        transport: str,
        started: float,
        run_dir: str | None,
    ) -> RunResult:
        restore = self._install_signals()
        captures: list[threading.Thread] = []
        end_reasons: dict[str, str] = {}
        done_frames: dict[str, int] = dict.fromkeys(readers, 0)
        try:
            for node in nodes:
                node.start()
            self._wait_ready(nodes)
            self._processing_started = time.time()
            first = receivers[self.config.stages[0].id].address
            for sid, (cfg, reader) in readers.items():
                t = threading.Thread(
                    target=self._capture,
                    args=(cfg, reader, first, policy, stats[self.config.stages[0].id], end_reasons),
                    name=f"capture-{sid}",
                    daemon=True,
                )
                captures.append(t)
                t.start()
            total = sum((r.info.frames or 0) // cfg.every for cfg, r in readers.values() if not r.info.live)
            for cfg, _ in readers.values():
                total = min(total, cfg.max_frames * len(readers)) if cfg.max_frames else total
            self._supervise(nodes, terminal, stats, done_frames, total or None)
        except VigilError as exc:
            self._fatal(str(exc), exc.exit_code)
            self.stop_now()
        finally:
            self.capture_stop.set()
            for t in captures:
                t.join(timeout=10)
            for node in nodes:
                node.join(timeout=30)
            terminal.close()
            restore()
            if run_dir:
                shutil.rmtree(run_dir, ignore_errors=True)
        return self._result(nodes, readers, stats, done_frames, end_reasons, policy, transport, started)

    def _wait_ready(self, nodes: list[Node]) -> None:
        for node in nodes:
            while not node.ready.wait(0.1):
                if self.failure:  # e.g. a worker process that died before it could report
                    raise _SetupFailed(self.failure, self.failure_code or StageError.exit_code)
                if self.abort.is_set():
                    raise StageError("stopped while stages were starting")
            if node.failure:
                raise _SetupFailed(node.failure, node.failure_code)

    def _capture(
        self,
        cfg: SourceConfig,
        reader: Reader,
        address: str,
        policy: str,
        stats: LinkStats,
        end_reasons: dict[str, str],
    ) -> None:
        sender = LinkSender(address, policy, self.config.links.capacity, stats)  # type: ignore[arg-type]
        try:
            end_reasons[cfg.id] = capture_loop(
                reader, cfg, lambda m: sender.send(m, self.abort), self.capture_stop
            )
        except Stopped:
            end_reasons[cfg.id] = "aborted"
        finally:
            sender.close(linger_ms=0 if self.abort.is_set() else 2000)

    def _supervise(
        self,
        nodes: list[Node],
        terminal: LinkReceiver,
        stats: dict[str, LinkStats],
        done_frames: dict[str, int],
        total: int | None,
    ) -> None:
        ends: dict[str, int] = dict.fromkeys(done_frames, 0)
        last_progress, last_counter, quiet_after_exit = time.monotonic(), -1, 0
        with Progress(total, disable=self.quiet) as bar:
            while not self.abort.is_set():
                env = terminal.recv(100)
                if env is not None:
                    msg = env.message
                    if isinstance(msg, Frame):
                        done_frames[msg.source] = done_frames.get(msg.source, 0) + 1
                        bar.update(1)
                    elif isinstance(msg, StreamEnd):
                        ends[msg.source] = ends.get(msg.source, 0) + 1
                        if all(v >= self._leaves for v in ends.values()):  # every leaf ended every source
                            return
                for node in nodes:
                    node.metrics.sample_queue(stats[node.cfg.id].depth)
                counter = sum(s.sent + s.received for s in stats.values()) + sum(done_frames.values())
                now = time.monotonic()
                if counter != last_counter:
                    last_progress, last_counter = now, counter
                elif now - last_progress > self.config.links.stall_timeout_s:
                    depths = {sid: s.depth for sid, s in stats.items()}
                    self._fatal(
                        f"no frame moved for {self.config.links.stall_timeout_s:.0f}s (queue depths {depths}); "
                        "stopping instead of hanging",
                        6,
                    )
                    self.stop_now()
                quiet_after_exit = (
                    quiet_after_exit + 1 if env is None and not any(n.alive() for n in nodes) else 0
                )
                if quiet_after_exit > 5:  # every stage thread is gone and nothing is left in flight
                    self._fatal("every stage ended before the streams did")
                    return

    def _install_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in old.items()]

    def _result(
        self,
        nodes: list[Node],
        readers: dict[str, tuple[SourceConfig, Reader]],
        stats: dict[str, LinkStats],
        done_frames: dict[str, int],
        end_reasons: dict[str, str],
        policy: str,
        transport: str,
        started: float,
    ) -> RunResult:
        ended = time.time()
        duration = ended - started
        processing_from = self._processing_started or ended
        for node in nodes:
            node.metrics.drops = stats[node.cfg.id].dropped
        if self.failure:
            status, code = ("failed", self.failure_code or StageError.exit_code)
        elif self.abort.is_set():
            status, code = "aborted", 130
        elif self.stop_requested or any(r in ("stopped", "aborted") for r in end_reasons.values()):
            status, code = "stopped", 130
        else:
            status, code = "completed", 0
        frames = sum(done_frames.values())
        summary: dict[str, Any] = {
            "status": status,
            "exit_code": code,
            "error": self.failure,
            "errors": list(self.failures),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "duration_s": round(duration, 3),
            "setup_s": round(processing_from - started, 3),  # opening sources, loading models
            "processing_s": round(ended - processing_from, 3),  # first frame captured to the end
            "frames": frames,
            "fps": round(frames / duration, 2) if duration > 0 else None,
            "output_dir": str(self.output_dir),
            "links": {"policy": policy, "transport": transport, "capacity": self.config.links.capacity},
            "sources": {
                sid: {
                    "uri": r.info.uri,
                    "kind": r.info.kind,
                    "fps": r.info.fps,
                    "size": [r.info.width, r.info.height],
                    "frames_announced": r.info.frames,
                    "frames_done": done_frames.get(sid, 0),
                    "end": end_reasons.get(sid),
                }
                for sid, (_, r) in readers.items()
            },
            "stages": {n.cfg.id: {**n.metrics.to_dict(), **_report(n)} for n in nodes},
        }
        summary["models"] = [
            m for st in summary["stages"].values() for m in st.get("report", {}).get("models", [])
        ]
        return RunResult(status, code, summary)


def _report(node: Node) -> dict[str, Any]:
    report = getattr(node, "context", None)
    return {"report": dict(report.report)} if report is not None and report.report else {}


class _SetupFailed(VigilError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


class _EndsOnly(LinkSender):
    """Secondary leaves tell the terminal only that their streams ended (frames are counted once)."""

    def __init__(self, address: str) -> None:
        super().__init__(address, "lossless", 64)

    def send(self, msg: Message, stop: Any = None, **kw: Any) -> bool:  # type: ignore[override]
        return True if isinstance(msg, Frame) else super().send(msg, stop, **kw)
