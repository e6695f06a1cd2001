"""A bounded outbox drained by one thread, so a slow or dead consumer never stalls the frame path.

`sink.mqtt` and `sink.webhook` put each message in an `Outbox`; `put` never blocks: when the
queue is full the message is dropped and counted. One daemon thread hands messages to
`deliver`, which may block (waiting for a broker, retrying a POST) without holding up frames.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("vigil")


def backoff_delay(attempt: int, base_s: float, max_s: float, jitter: float = 0.0) -> float:
    """Seconds to wait before retry `attempt` (0, 1, 2, ...): base * 2**attempt, capped at max_s,
    then spread by +-jitter (a fraction) so many clients do not retry in step."""
    delay = min(max_s, base_s * (2.0 ** max(attempt, 0)))
    if jitter:
        delay *= 1.0 + random.uniform(-jitter, jitter)
    return max(0.0, delay)


@dataclass
class OutboxStats:
    """queued: accepted by put; sent: delivered; dropped: refused (queue full) or left at close;
    failed: given up by `deliver` (it returned False)."""

    queued: int = 0
    sent: int = 0
    dropped: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"queued": self.queued, "sent": self.sent, "dropped": self.dropped, "failed": self.failed}


class Outbox(Generic[T]):
    """Bounded queue + one delivery thread.

    deliver(item) -> True when delivered, False when given up (counted as failed). It is called
    with `stopping` (a threading.Event) set when `close` asks it to hurry.
    """

    def __init__(self, name: str, deliver: Callable[[T, threading.Event], bool], maxsize: int) -> None:
        self.name = name
        self.stats = OutboxStats()
        self.stopping = threading.Event()
        self._deliver = deliver
        self._queue: queue.Queue[T | None] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name=f"outbox-{name}", daemon=True)
        self._thread.start()

    def put(self, item: T) -> bool:
        """Queue an item without blocking; False (and counted as dropped) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1
            if not self._warned:
                self._warned = True
                log.warning(
                    "%s: outbox full (%d); dropping messages until it drains", self.name, self._queue.maxsize
                )
            return False
        with self._lock:
            self.stats.queued += 1
        return True

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                ok = self._deliver(item, self.stopping)
            except Exception:  # a consumer's failure must not kill the thread
                log.exception("%s: delivery failed", self.name)
                ok = False
            with self._lock:
                if ok:
                    self.stats.sent += 1
                else:
                    self.stats.failed += 1
            self._queue.task_done()

    def close(self, timeout_s: float) -> OutboxStats:
        """Deliver what is queued for up to `timeout_s`, then stop; what is left counts as dropped."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:  # queued or in hand
            time.sleep(0.01)
        self.stopping.set()
        left = 0
        while True:
            try:
                if self._queue.get_nowait() is not None:
                    left += 1
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(max(0.0, deadline - time.monotonic()) + 2.0)
        with self._lock:
            self.stats.dropped += left
        return self.stats
