"""One source of a running pipeline: its reader, its capture thread, and how its stream went."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from pipeline.config import SourceConfig
from pipeline.errors import SourceError
from pipeline.reader import Reader
from pipeline.redact import redact_uri
from pipeline.sources import capture_loop
from pipeline.status import SourceRate, SourceStatus, source_state
from pipeline.summary import SourceOutcome
from pipeline.transport import LinkSender, LinkStats, Policy, Stopped


@dataclass
class SourceRun:
    """A source in a run: captured in its own thread into the first stage's link."""

    cfg: SourceConfig
    reader: Reader
    stop: threading.Event = field(default_factory=threading.Event)  # end this stream (drain, removal)
    thread: threading.Thread | None = None
    end: str | None = None  # eos | stopped | removed | error | aborted
    error: str | None = None
    removed: bool = False
    leaf_ends: int = 0  # leaves its end has reached
    ended: threading.Event = field(default_factory=threading.Event)  # its end reached every leaf
    frames_done: int = 0
    rate: SourceRate = field(default_factory=SourceRate)  # for `Runner.status`
    cpu_s: float | None = None  # CPU of its capture thread (reading, decoding, sending), once it ended

    def start(
        self, address: str, policy: Policy, capacity: int, stats: LinkStats, abort: threading.Event
    ) -> None:
        """Start capturing; the thread is recorded only once it runs (so a failed start is reported
        as itself, and nobody joins a thread that never started)."""
        thread = threading.Thread(
            target=self._capture,
            args=(address, policy, capacity, stats, abort),
            name=f"capture-{self.cfg.id}",
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError as exc:  # e.g. "can't start new thread" when the process is at its limit
            raise SourceError(f"source {self.cfg.id}: cannot start its capture thread: {exc}") from exc
        self.thread = thread

    def _capture(
        self, address: str, policy: Policy, capacity: int, stats: LinkStats, abort: threading.Event
    ) -> None:
        sender = LinkSender(address, policy, capacity, stats)  # owned by this thread
        cpu0 = time.thread_time()
        try:
            end = capture_loop(self.reader, self.cfg, lambda m: sender.send(m, abort), self.stop)
            self.end, self.error = ("removed" if self.removed else end.reason), end.error
        except Stopped:
            self.end = "aborted"
        finally:
            sender.close(linger_ms=0 if abort.is_set() else 2000)
            self.cpu_s = time.thread_time() - cpu0

    def join(self, timeout: float) -> None:
        """Wait for the capture thread (a source that never started closes its reader here)."""
        if self.thread is not None:
            self.thread.join(timeout)
        else:
            self.reader.close()

    def outcome(self) -> SourceOutcome:
        return SourceOutcome(self.reader.info, self.frames_done, self.end, self.error, self.cpu_s)

    def status(self, now: float) -> SourceStatus:
        done = self.ended.is_set() or self.end is not None
        return SourceStatus(
            self.cfg.id, redact_uri(str(self.cfg.uri)), self.reader.info.kind,
            source_state(done, self.end, self.reader.reconnecting, self.frames_done),
            self.rate.fps(now), self.frames_done, self.rate.drops, self.rate.age(now),
            self.reader.reconnects, self.error,
        )  # fmt: skip
