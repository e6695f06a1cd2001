"""Runs one stage instance on messages: timing, batching, error policy, stream hooks.

Used the same way in a thread, a pool worker thread and a worker process, so a stage
behaves identically whatever its placement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.errors import OutputError, StageError, VigilError
from pipeline.frame import Frame
from pipeline.stage import Stage
from pipeline.wire import Control, Envelope, Message, StreamEnd, StreamStart

log = logging.getLogger("vigil.runner")


@dataclass
class ExecutorState:
    failed: str | None = None  # set when on_error=stop tripped; frames then pass through untouched
    errors: int = 0
    ended: set[str] = field(default_factory=set)


class StageExecutor:
    """Apply a stage to messages and say what to send on."""

    def __init__(
        self,
        stage: Stage[Any],
        on_error: str = "skip",
        batch: int = 1,
        on_fatal: Callable[[str, int], None] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.stage, self.on_error, self.batch = stage, on_error, batch
        self.on_fatal = on_fatal or (lambda msg, code: None)
        self.on_stop = on_stop or (lambda: None)
        self.state = ExecutorState()
        self.busy_since: float | None = None  # monotonic time the stage entered process(), while in it

    @property
    def sid(self) -> str:
        return self.stage.id

    def handle_frames(self, frames: list[Frame]) -> list[list[Message]]:
        """Process frames (one batch); one output list per input frame."""
        if self.state.failed:
            return [[f.replace(errors=(*f.errors, self.sid))] for f in frames]
        t0 = time.perf_counter()
        self.busy_since = time.monotonic()
        try:
            results = self.stage.process_batch(frames) if len(frames) > 1 else [self.stage.process(frames[0])]
            if len(results) != len(frames):
                raise RuntimeError(f"process_batch returned {len(results)} results for {len(frames)} frames")
        except Exception as exc:  # one bad frame must not end a surveillance run
            return [self._failed(f, exc) for f in frames]
        finally:
            self.busy_since = None
        per_frame = (time.perf_counter() - t0) / len(frames)
        if getattr(self.stage, "stop_requested", False):  # e.g. q pressed in a display window
            self.on_stop()
        return [[] if r is None else [r.replace(timings={**r.timings, self.sid: per_frame})] for r in results]

    def _failed(self, frame: Frame, exc: Exception) -> list[Message]:
        self.state.errors += 1
        detail = str(exc) if isinstance(exc, VigilError) else f"{type(exc).__name__}: {exc}"
        log.error(
            "stage %s failed on frame %s#%d: %s",
            self.sid,
            frame.source,
            frame.seq,
            detail,
            exc_info=not isinstance(exc, VigilError) and log.isEnabledFor(logging.DEBUG),
        )
        self._maybe_stop(exc, f"stage {self.sid} failed on frame {frame.source}#{frame.seq}: {detail}")
        return [frame.replace(errors=(*frame.errors, self.sid))]

    def _maybe_stop(self, exc: Exception, message: str) -> None:
        """Stop the run when the stage says so (`on_error: stop`), or when an output could not
        be written (whatever `on_error` says: a run must not report files it did not write)."""
        if isinstance(exc, OutputError):
            self.state.failed = str(exc)
            self.on_fatal(self.state.failed, exc.exit_code)
        elif self.on_error == "stop":
            self.state.failed = message
            self.on_fatal(message, StageError.exit_code)

    def handle_control(self, msg: Message) -> list[Message]:
        out: list[Message] = []
        try:
            if isinstance(msg, StreamStart):
                self.stage.start_stream(msg.info)
            elif isinstance(msg, StreamEnd):
                self.state.ended.add(msg.source)
                if not self.state.failed:
                    out += self.stage.end_stream(msg.source)
        except Exception as exc:
            self.state.errors += 1
            log.error(
                "stage %s failed at stream %s of %s: %s",
                self.sid,
                "start" if isinstance(msg, StreamStart) else "end",
                getattr(msg, "source", "?"),
                exc,
            )
            self._maybe_stop(exc, f"stage {self.sid} failed: {exc}")
        return [*out, msg]


Emit = Callable[[list[Message], int], None]


class Receiver(Protocol):
    """What `serve` reads from: a link receiver, or a wrapper that counts what it hands out."""

    def recv(self, timeout_ms: int = ...) -> Envelope | None: ...


class StopSignal(Protocol):
    """A threading.Event or a multiprocessing Event: polled to stop at once (abort)."""

    def is_set(self) -> bool: ...


def serve(executor: StageExecutor, receiver: Receiver, emit: Emit, stop: StopSignal) -> Control | None:
    """Receive, process, emit until a `stop` control arrives (returned, for the caller to pass
    on) or `stop` is set (abort: None). Frames waiting together are batched up to
    `executor.batch`; stream start/end go through the stage's hooks in order."""
    pending: Envelope | None = None
    while not stop.is_set():
        env = pending or receiver.recv()
        pending = None
        if env is None:
            continue
        msg = env.message
        if isinstance(msg, Control):
            if msg.type == "stop":
                return msg
            continue
        if not isinstance(msg, Frame):
            emit(executor.handle_control(msg), env.ticket)
            continue
        batch, pending = _gather(receiver, env, executor.batch)
        results = executor.handle_frames([e.message for e in batch])  # type: ignore[misc]
        for e, out in zip(batch, results, strict=True):
            emit(out, e.ticket)
    return None


def _gather(receiver: Receiver, first: Envelope, size: int) -> tuple[list[Envelope], Envelope | None]:
    """`first` plus the frames already waiting, up to `size`; a non-frame met on the way is
    returned separately so it is handled after the batch, in order."""
    batch = [first]
    while len(batch) < size:
        nxt = receiver.recv(timeout_ms=0)
        if nxt is None:
            break
        if not isinstance(nxt.message, Frame):
            return batch, nxt
        batch.append(nxt)
    return batch, None
