"""The stall watchdog: a run where stages hold work and nothing moves is stopped, not left hanging."""

from __future__ import annotations

import time

from pipeline.graph import Graph


class StallWatchdog:
    """Fires when stages hold work (a queue is not empty, or a stage is inside process()) and
    nothing has moved for `timeout_s`. Idle is not a stall: a reconnecting camera sends nothing."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.last_counter = -1
        self.last_move = time.monotonic()

    def stalled(self, graph: Graph, done: int) -> bool:
        # a worker restart is the pool working on the problem, not a stall
        restarts = sum(n.metrics.restarts for n in graph.nodes)
        counter = sum(s.sent + s.received for s in graph.stats.values()) + done + restarts
        now = time.monotonic()
        holding = any(s.depth > 0 for s in graph.stats.values()) or any(n.busy() for n in graph.nodes)
        if counter != self.last_counter or not holding:
            self.last_counter, self.last_move = counter, now
            return False
        return now - self.last_move > self.timeout_s
