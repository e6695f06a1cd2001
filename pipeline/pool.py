"""A stage run as `workers` replicas (threads or processes), merged back into order.

dispatcher thread: input link -> ticket -> least busy worker's own link (keeps what each
                   worker holds, restarts dead worker processes and resends what they held)
workers:           StageExecutor on their link, results to the collector (every ticket answered)
collector thread:  results -> ticket order -> output links
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import threading
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.config import StageConfig
from pipeline.errors import StageError
from pipeline.frame import Frame
from pipeline.metrics import StageMetrics
from pipeline.nodes import MAX_ATTEMPTS, MAX_RESTARTS, Node, _fan_out, _process_main, run_worker
from pipeline.stage import StageContext
from pipeline.transport import LinkReceiver, LinkSender, Stopped, endpoint
from pipeline.wire import Control, Message, StreamEnd

log = logging.getLogger("vigil.runner")


@dataclass
class _Slot:
    index: int
    wid: int = -1
    sender: LinkSender | None = None
    handle: Any = None  # threading.Thread | mp.Process
    inflight: dict[int, tuple[Message, int]] = field(default_factory=dict)  # ticket -> (message, attempts)
    backlog: deque[tuple[int, Message, int]] = field(
        default_factory=deque
    )  # resent one at a time after a crash
    probing: bool = False  # after a crash: one message in flight, so the next death names its culprit
    no_progress: int = 0  # restarts since this worker last finished a message
    ready: bool = False
    dead: bool = False


class PoolNode(Node):
    def __init__(
        self,
        cfg: StageConfig,
        context: StageContext,
        receiver: LinkReceiver,
        outputs: list[LinkSender],
        sources: set[str],
        abort: threading.Event,
        on_fatal: Any,
        transport: str,
        capacity: int,
        run_dir: str | None = None,
    ) -> None:
        self.cfg, self.context, self.receiver, self.outputs = cfg, context, receiver, outputs
        self.sources, self.abort, self.on_fatal = sources, abort, on_fatal
        self.transport, self.capacity, self.run_dir = transport, capacity, run_dir
        self.metrics = StageMetrics(cfg.id, cfg.kind, placement=cfg.placement, workers=cfg.workers)
        self.ready = threading.Event()
        self.failure: str | None = None
        self.failure_code = StageError.exit_code
        self.results = LinkReceiver(
            endpoint(transport, f"{cfg.id}-results", run_dir=run_dir), "lossless", capacity * cfg.workers
        )
        self.bypass = LinkSender(self.results.address, "lossless", capacity)
        self.cond = threading.Condition()
        self.slots = [_Slot(k) for k in range(cfg.workers)]
        self.by_wid: dict[int, _Slot] = {}
        self._wids = itertools.count()
        self._mp_stop = mp.get_context("spawn").Event() if cfg.placement == "process" else None
        self.dispatcher = threading.Thread(target=self._dispatch, name=f"pool-{cfg.id}-dispatch", daemon=True)
        self.collector = threading.Thread(target=self._collect, name=f"pool-{cfg.id}-collect", daemon=True)

    # ------------------------------------------------------------------------------ workers
    def _spawn(self, slot: _Slot) -> None:
        if slot.sender is not None:
            slot.sender.close(linger_ms=0)
        slot.sender = LinkSender(
            endpoint(self.transport, f"{self.cfg.id}-w{slot.index}", run_dir=self.run_dir),
            "lossless",
            self.capacity,
            bind=True,
        )
        slot.wid, slot.ready = next(self._wids), False
        self.by_wid[slot.wid] = slot
        spec = {
            "kind": self.cfg.kind,
            "id": self.cfg.id,
            "options": self.cfg.with_,
            "wid": slot.wid,
            "in": slot.sender.address,
            "out": self.results.address,
            "capacity": self.capacity,
            "output_dir": str(self.context.output_dir),
            "threads": self.context.threads,
            "sources": {k: asdict(v) for k, v in self.context.sources.items()},
            "on_error": self.cfg.on_error,
            "batch": self.cfg.batch,
            "log_level": logging.getLogger("vigil").getEffectiveLevel(),
        }
        if self.cfg.placement == "process":
            slot.handle = mp.get_context("spawn").Process(
                target=_process_main,
                args=(spec, self._mp_stop),
                name=f"vigil-{self.cfg.id}-{slot.index}",
                daemon=True,
            )
        else:
            slot.handle = threading.Thread(
                target=run_worker,
                args=(spec, self.abort),
                daemon=True,
                name=f"stage-{self.cfg.id}-{slot.index}",
            )
        slot.handle.start()

    def _check_workers(self) -> None:
        """Restart worker processes that died; what they held is resent one message at a time."""
        if self.cfg.placement != "process":
            return
        for slot in self.slots:
            if slot.dead or slot.handle is None or slot.handle.exitcode is None:
                continue
            with self.cond:
                held, slot.inflight = sorted(slot.inflight.items()), {}
            # Only a death with a single message in flight says which message killed it.
            culprit = held[0][0] if slot.probing and len(held) == 1 else None
            requeue = [(t, m, a + 1 if t == culprit else a) for t, (m, a) in held] + list(slot.backlog)
            slot.backlog.clear()
            slot.no_progress += 1
            self.metrics.restarts += 1
            log.error(
                "stage %s: worker %d died (exit code %s) holding %d frame(s); restart %d/%d",
                self.cfg.id,
                slot.index,
                slot.handle.exitcode,
                len(held),
                slot.no_progress,
                MAX_RESTARTS,
            )
            if slot.no_progress > MAX_RESTARTS:
                slot.dead = True
                if all(s.dead for s in self.slots):
                    self.on_fatal(
                        f"stage {self.cfg.id}: every worker died {MAX_RESTARTS + 1} times without finishing a frame"
                    )
                for ticket, msg, attempts in requeue:
                    self._assign(ticket, msg, attempts)
                continue
            self._spawn(slot)
            slot.probing = True
            for ticket, msg, attempts in requeue:
                if attempts > MAX_ATTEMPTS:
                    self._bypass(ticket, msg, f"killed its worker {attempts - 1} times")
                else:
                    slot.backlog.append((ticket, msg, attempts))

    def _feed_backlogs(self) -> None:
        for slot in self.slots:
            if slot.probing and not slot.dead and not slot.inflight:
                if slot.backlog:
                    self._send(slot, *slot.backlog.popleft())
                else:
                    slot.probing = False

    def _pick(self) -> _Slot | None:
        """The least busy worker with room; None when no worker is left."""
        while True:
            with self.cond:
                alive = [s for s in self.slots if not s.dead]
                if not alive:
                    return None
                free = [s for s in alive if not s.probing and len(s.inflight) < self.capacity]
                if free:
                    return min(free, key=lambda s: len(s.inflight))
                if self.abort.is_set():
                    raise Stopped()
                self.cond.wait(0.1)
            self._check_workers()
            self._feed_backlogs()

    def _send(self, slot: _Slot, ticket: int, msg: Message, attempts: int) -> None:
        with self.cond:
            slot.inflight[ticket] = (msg, attempts)
        sender = slot.sender
        assert sender is not None
        while True:
            try:
                sender.send(msg, self.abort, ticket=ticket, timeout_s=0.5)
                return
            except TimeoutError:  # full, or its worker died: a dead worker's messages are requeued
                self._check_workers()
                if slot.dead or slot.sender is not sender:
                    return

    def _assign(self, ticket: int, msg: Message, attempts: int) -> None:
        if attempts > MAX_ATTEMPTS:
            self._bypass(ticket, msg, f"killed its worker {attempts - 1} times")
            return
        slot = self._pick()
        if slot is None:
            self._bypass(ticket, msg, "no worker left")
        else:
            self._send(slot, ticket, msg, attempts)

    def _bypass(self, ticket: int, msg: Message, why: str) -> None:
        """Pass a message on unprocessed (marked), straight to the collector."""
        if isinstance(msg, Frame):
            what = f"frame {msg.source}#{msg.seq}"
            log.error("stage %s: %s %s; passing it on unprocessed", self.cfg.id, what, why)
            msg = msg.replace(errors=(*msg.errors, self.cfg.id))
            if self.cfg.on_error == "stop":
                self.on_fatal(f"stage {self.cfg.id}: {what} {why}")
        self.bypass.send(msg, self.abort, ticket=ticket, origin=-2)

    # ------------------------------------------------------------------------------ threads
    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)
        self.collector.start()
        self.dispatcher.start()

    def _dispatch(self) -> None:
        ticket, ended = 0, set()
        try:
            while not self.abort.is_set():
                self._check_workers()
                self._feed_backlogs()
                if ended >= self.sources:
                    with self.cond:
                        if not any(s.inflight or s.backlog for s in self.slots):
                            break
                        self.cond.wait(0.1)
                    continue
                env = self.receiver.recv()
                if env is None:
                    continue
                if isinstance(env.message, Frame):
                    self.metrics.frame_in()
                elif isinstance(env.message, StreamEnd):
                    ended.add(env.message.source)
                self._assign(ticket, env.message, 1)
                ticket += 1
        except Stopped:
            pass
        finally:
            self._stop_workers()

    def _stop_workers(self) -> None:
        if self._mp_stop is not None and self.abort.is_set():
            self._mp_stop.set()
        for slot in self.slots:
            if slot.sender is not None and not slot.dead:
                try:
                    slot.sender.send(Control("stop", {}), timeout_s=5)
                except (TimeoutError, Stopped):
                    pass
        for slot in self.slots:
            if slot.handle is not None:
                slot.handle.join(timeout=10)
                if isinstance(slot.handle, mp.process.BaseProcess) and slot.handle.is_alive():
                    slot.handle.terminate()
            if slot.sender is not None:
                slot.sender.close(linger_ms=0)
        self.bypass.close(
            linger_ms=0 if self.abort.is_set() else 2000
        )  # pass-throughs (stream end too) may be queued
        self.receiver.close()

    def _collect(self) -> None:
        emit = _fan_out(self.outputs, self.metrics, self.abort)
        partial: dict[tuple[int, int], list[Message]] = defaultdict(list)
        done: dict[int, list[Message]] = {}
        next_ticket, ended = 0, set()
        try:
            while not self.abort.is_set() and not ended >= self.sources:
                env = self.results.recv()
                if env is None:
                    continue
                msg = env.message
                if isinstance(msg, Control) and msg.type in ("ready", "failed"):
                    self._worker_report(msg)
                    continue
                key = (env.ticket, env.origin)
                if not (isinstance(msg, Control) and msg.type == "none"):
                    partial[key].append(msg)
                    if len(partial[key]) < env.parts:
                        continue
                msgs = partial.pop(key, [])
                if env.ticket < next_ticket or env.ticket in done:
                    continue  # a duplicate from a resend after a worker restart
                done[env.ticket] = msgs
                with self.cond:
                    for slot in self.slots:
                        if slot.inflight.pop(env.ticket, None) is not None:
                            slot.no_progress = 0
                    self.cond.notify_all()
                while next_ticket in done:
                    out = done.pop(next_ticket)
                    emit(out, next_ticket)
                    ended |= {m.source for m in out if isinstance(m, StreamEnd)}
                    next_ticket += 1
        except Stopped:
            pass
        finally:
            for out in self.outputs:
                out.close(linger_ms=0 if self.abort.is_set() else 2000)
            self.results.close()

    def _worker_report(self, msg: Control) -> None:
        slot = self.by_wid.get(int(msg.data.get("wid", -1)))
        if msg.type == "failed":
            self.failure = f"stage {self.cfg.id} ({self.cfg.kind}) could not start: {msg.data.get('error')}"
            self.failure_code = int(msg.data.get("code", StageError.exit_code))
            self.ready.set()
            return
        if slot is not None:
            slot.ready = True
        if all(s.ready or s.dead for s in self.slots):
            self.ready.set()

    def join(self, timeout: float | None = None) -> None:
        self.dispatcher.join(timeout)
        self.collector.join(timeout)

    def alive(self) -> bool:
        return self.dispatcher.is_alive() or self.collector.is_alive()
