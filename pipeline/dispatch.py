"""N workers of one stage (threads or spawned processes), fed by a dispatcher, merged by a collector.

dispatcher thread: input link -> ticket -> least busy worker's own link (keeps what each
                   worker holds, restarts dead worker processes and resends what they held)
workers:           `run_worker` on their link, results to the collector (every ticket answered)
collector thread:  results -> ticket order -> emit (the node's fan-out)

A worker process that dies is restarted and the messages it held are sent again, so a crash
does not lose frames of a recorded file; a message that keeps killing workers is passed on
unprocessed, marked with the error. The `stop` control that ends the graph goes through the
pool like any message: the dispatcher waits until nothing is in flight, stops the workers and
hands it to the collector, which emits it last.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.executor import Emit
from pipeline.frame import Frame
from pipeline.metrics import StageMetrics
from pipeline.transport import LinkReceiver, LinkSender, Stopped, Transport, endpoint
from pipeline.wire import Control, Envelope, Message
from pipeline.workers import Startup, WorkerLinks, WorkerSpec, process_main, run_worker

log = logging.getLogger("vigil.runner")
MAX_ATTEMPTS = 3  # deliveries of one message before it is passed on unprocessed
# Deaths in a row without a finished message before a worker slot is given up: the first death
# names no culprit (several messages were in flight), then the culprit may kill MAX_ATTEMPTS more.
MAX_RESTARTS = MAX_ATTEMPTS + 1
REPORT_WAIT_S = 5.0  # how long the collector waits for the workers' final reports after the stop


@dataclass
class _Slot:
    index: int
    wid: int = -1
    sender: LinkSender | None = None
    handle: threading.Thread | mp.process.BaseProcess | None = None
    inflight: dict[int, tuple[Message, int]] = field(default_factory=dict)  # ticket -> (message, attempts)
    backlog: deque[tuple[int, Message, int]] = field(
        default_factory=deque
    )  # resent one at a time after a crash
    probing: bool = False  # after a crash: one message in flight, so the next death names its culprit
    no_progress: int = 0  # restarts since this worker last finished a message
    ready: bool = False
    dead: bool = False

    def exitcode(self) -> int | None:
        """The exit code of a dead worker process; None while it runs (and for threads)."""
        return self.handle.exitcode if isinstance(self.handle, mp.process.BaseProcess) else None


@dataclass(frozen=True)
class PoolPlan:
    """How a stage's workers are placed and linked."""

    workers: int
    processes: bool  # spawned processes (crash-isolated) rather than threads
    transport: Transport  # links between the pool and its workers
    capacity: int
    on_error: str = "skip"
    run_dir: str | None = None


class WorkerPool:
    """Runs `plan.workers` instances of a stage and emits their results in input order."""

    def __init__(
        self,
        spec: WorkerSpec,
        plan: PoolPlan,
        receiver: LinkReceiver,
        emit: Emit,
        metrics: StageMetrics,
        startup: Startup,
        abort: threading.Event,
        on_fatal: Callable[[str], None],
        on_report: Callable[[dict[str, Any]], None],
        on_exit: Callable[[], None],
    ) -> None:
        self.spec, self.plan, self.receiver, self.emit = spec, plan, receiver, emit
        self.metrics, self.startup, self.abort = metrics, startup, abort
        self.on_fatal, self.on_report, self.on_exit = on_fatal, on_report, on_exit
        self.results = LinkReceiver(
            endpoint(plan.transport, f"{spec.stage_id}-results", run_dir=plan.run_dir),
            "lossless",
            plan.capacity * plan.workers,
        )
        self.bypass = LinkSender(self.results.address, "lossless", plan.capacity)
        self.cond = threading.Condition()
        self.slots = [_Slot(k) for k in range(plan.workers)]
        self.by_wid: dict[int, _Slot] = {}
        self._wids = itertools.count()
        self._mp_stop = mp.get_context("spawn").Event() if plan.processes else None
        self._reports_expected = 0
        name = spec.stage_id
        self.dispatcher = threading.Thread(target=self._dispatch, name=f"pool-{name}-dispatch", daemon=True)
        self.collector = threading.Thread(target=self._collect, name=f"pool-{name}-collect", daemon=True)

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)
        self.collector.start()
        self.dispatcher.start()

    def join(self, timeout: float | None = None) -> None:
        self.dispatcher.join(timeout)
        self.collector.join(timeout)

    def alive(self) -> bool:
        return self.dispatcher.is_alive() or self.collector.is_alive()

    def pending(self) -> int:
        """Messages handed to workers and not yet answered."""
        with self.cond:
            return sum(len(s.inflight) + len(s.backlog) for s in self.slots)

    # ------------------------------------------------------------------------------ workers
    def _spawn(self, slot: _Slot) -> None:
        if slot.sender is not None:
            slot.sender.close(linger_ms=0)
        address = endpoint(
            self.plan.transport, f"{self.spec.stage_id}-w{slot.index}", run_dir=self.plan.run_dir
        )
        slot.sender = LinkSender(address, "lossless", self.plan.capacity, bind=True)
        slot.wid, slot.ready = next(self._wids), False
        self.by_wid[slot.wid] = slot
        links = WorkerLinks(slot.wid, slot.sender.address, self.results.address)
        if self._mp_stop is not None:
            slot.handle = mp.get_context("spawn").Process(
                target=process_main,
                args=(self.spec, links, self._mp_stop),
                name=f"vigil-{self.spec.stage_id}-{slot.index}",
                daemon=True,
            )
        else:
            slot.handle = threading.Thread(
                target=run_worker,
                args=(self.spec, links, self.abort),
                daemon=True,
                name=f"stage-{self.spec.stage_id}-{slot.index}",
            )
        slot.handle.start()

    def _check_workers(self) -> None:
        """Restart worker processes that died; what they held is resent one message at a time."""
        for slot in self.slots:
            code = slot.exitcode()
            if slot.dead or code is None:
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
                self.spec.stage_id,
                slot.index,
                code,
                len(held),
                slot.no_progress,
                MAX_RESTARTS,
            )
            if slot.no_progress > MAX_RESTARTS:
                self._give_up(slot, requeue)
                continue
            self._spawn(slot)
            slot.probing = True
            for ticket, msg, attempts in requeue:
                if attempts > MAX_ATTEMPTS:
                    self._bypass(ticket, msg, f"killed its worker {attempts - 1} times")
                else:
                    slot.backlog.append((ticket, msg, attempts))

    def _give_up(self, slot: _Slot, requeue: list[tuple[int, Message, int]]) -> None:
        slot.dead = True
        if all(s.dead for s in self.slots):
            self.on_fatal(
                f"stage {self.spec.stage_id}: every worker died {MAX_RESTARTS + 1} times without finishing a frame"
            )
        for ticket, msg, attempts in requeue:
            self._assign(ticket, msg, attempts)

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
                free = [s for s in alive if not s.probing and len(s.inflight) < self.plan.capacity]
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
        if sender is None:
            return
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
            log.error("stage %s: %s %s; passing it on unprocessed", self.spec.stage_id, what, why)
            msg = msg.replace(errors=(*msg.errors, self.spec.stage_id))
            if self.plan.on_error == "stop":
                self.on_fatal(f"stage {self.spec.stage_id}: {what} {why}")
        self.bypass.send(msg, self.abort, ticket=ticket, origin=-2)

    # ------------------------------------------------------------------------------ dispatcher
    def _dispatch(self) -> None:
        ticket = 0
        try:
            while not self.abort.is_set():
                self._check_workers()
                self._feed_backlogs()
                env = self.receiver.recv()
                if env is None:
                    continue
                msg = env.message
                if isinstance(msg, Control):
                    if msg.type == "stop":
                        self._finish(ticket, msg)
                        return
                    continue
                if isinstance(msg, Frame):
                    self.metrics.frame_in()
                self._assign(ticket, msg, 1)
                ticket += 1
        except Stopped:
            pass
        finally:
            self._stop_workers()
            # The bypass belongs to this thread; what it still holds (the stop) must get through.
            self.bypass.close(linger_ms=0 if self.abort.is_set() else 2000)
            self.receiver.close()

    def _finish(self, ticket: int, stop: Control) -> None:
        """Wait until every message is answered, stop the workers, then let the stop through last."""
        while not self.abort.is_set():
            self._check_workers()
            self._feed_backlogs()
            with self.cond:
                if not any(s.inflight or s.backlog for s in self.slots):
                    break
                self.cond.wait(0.1)
        self._reports_expected = sum(1 for s in self.slots if not s.dead)
        self._stop_workers()
        self.bypass.send(stop, self.abort, ticket=ticket, origin=-2)

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
                slot.sender = None

    # ------------------------------------------------------------------------------ collector
    def _collect(self) -> None:
        order = _TicketOrder()
        try:
            while not self.abort.is_set():
                env = self.results.recv()
                if env is None:
                    continue
                if self._bookkeeping(env.message):
                    continue
                done = order.add(env)
                if done is None:
                    continue
                with self.cond:
                    for slot in self.slots:
                        if slot.inflight.pop(env.ticket, None) is not None:
                            slot.no_progress = 0
                    self.cond.notify_all()
                for ticket, msgs in order.ready():
                    stop = next((m for m in msgs if isinstance(m, Control) and m.type == "stop"), None)
                    self.emit([m for m in msgs if m is not stop], ticket)
                    if stop is not None:
                        self._await_reports()
                        self.emit([stop], ticket)
                        return
        except Stopped:
            pass
        finally:
            self.on_exit()  # the collector is the thread that used the node's outputs
            self.results.close()

    def _bookkeeping(self, msg: Message) -> bool:
        """Handle a worker's ready/failed/report control; True when `msg` was one."""
        if not isinstance(msg, Control) or msg.type not in ("ready", "failed", "report"):
            return False
        slot = self.by_wid.get(int(msg.data.get("wid", -1)))
        if msg.type == "failed":
            error = f"stage {self.spec.stage_id} ({self.spec.kind}) could not start: {msg.data.get('error')}"
            self.startup.fail(error, int(msg.data.get("code", self.startup.failure_code)))
        elif msg.type == "report":
            self._reports_expected -= 1
            self.on_report(dict(msg.data.get("report", {})))
        elif slot is not None:
            slot.ready = True
            if all(s.ready or s.dead for s in self.slots):
                self.startup.ready.set()
        return True

    def _await_reports(self) -> None:
        """The workers' final reports may still be on their way when the stop comes through."""
        waited = 0.0
        while self._reports_expected > 0 and waited < REPORT_WAIT_S and not self.abort.is_set():
            env = self.results.recv(100)
            waited += 0.1
            if env is not None:
                self._bookkeeping(env.message)


class _TicketOrder:
    """Puts answers back into ticket order; a ticket may have several parts (or none: `none`)."""

    def __init__(self) -> None:
        self.partial: dict[tuple[int, int], list[Message]] = defaultdict(list)
        self.done: dict[int, list[Message]] = {}
        self.next_ticket = 0

    def add(self, env: Envelope) -> int | None:
        """Record one part; returns the ticket when it is complete (None while parts are missing,
        or for a duplicate from a resend after a worker restart)."""
        key = (env.ticket, env.origin)
        msg = env.message
        if not (isinstance(msg, Control) and msg.type == "none"):
            self.partial[key].append(msg)
            if len(self.partial[key]) < env.parts:
                return None
        msgs = self.partial.pop(key, [])
        if env.ticket < self.next_ticket or env.ticket in self.done:
            return None
        self.done[env.ticket] = msgs
        return env.ticket

    def ready(self) -> list[tuple[int, list[Message]]]:
        """Complete tickets that are next in order, removed from the buffer."""
        out = []
        while self.next_ticket in self.done:
            out.append((self.next_ticket, self.done.pop(self.next_ticket)))
            self.next_ticket += 1
        return out
