"""A point-in-time view of a running pipeline: per source and per stage (`Runner.status`).

Read by the service (HTTP API, /healthz, Prometheus metrics) from other threads; every field
is a plain value copied under the runner's lock, so a reader never holds the frame path.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

SourceState = Literal["starting", "running", "reconnecting", "ended", "error"]
FPS_WINDOW_S = 5.0  # the fps of a source is measured over its latest frames within this window


@dataclass
class SourceRate:
    """When a source's frames left the pipeline, for its fps, drops and last-frame age."""

    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    next_seq: int = 0  # the seq after the highest seen: seq gaps are frames dropped on the way
    drops: int = 0

    def frame(self, seq: int, now: float | None = None) -> None:
        self.arrivals.append(time.monotonic() if now is None else now)
        if seq > self.next_seq:
            self.drops += seq - self.next_seq
        self.next_seq = max(self.next_seq, seq + 1)

    def fps(self, now: float) -> float:
        recent = [t for t in self.arrivals if now - t <= FPS_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(now - recent[0], recent[-1] - recent[0], 1e-6)

    def age(self, now: float) -> float | None:
        return now - self.arrivals[-1] if self.arrivals else None


@dataclass(frozen=True)
class SourceStatus:
    """One source as the API shows it (`uri` has its credentials masked)."""

    id: str
    uri: str
    kind: str
    state: SourceState
    fps: float
    frames: int
    drops: int
    last_frame_age_s: float | None
    reconnects: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uri": self.uri,
            "kind": self.kind,
            "state": self.state,
            "fps": round(self.fps, 2),
            "frames": self.frames,
            "drops": self.drops,
            "last_frame_age_s": None if self.last_frame_age_s is None else round(self.last_frame_age_s, 3),
            "reconnects": self.reconnects,
            "error": self.error,
        }


@dataclass(frozen=True)
class StageStatus:
    """One stage: alive or not, its counters (as in the summary) and its link's queue and drops."""

    id: str
    kind: str
    alive: bool
    frames_in: int
    frames_out: int
    errors: int
    restarts: int
    drops: int
    queue_depth: int
    models: tuple[str, ...] = ()
    invalid: int = 0  # messages its input link refused (malformed, forged, not from this run)
    # event sinks (sink.mqtt, sink.webhook): messages by outcome, from the report's "delivery"
    delivery: tuple[tuple[str, int], ...] = ()
    cpu_seconds: float | None = None  # CPU of the stage's own thread since setup (one thread only)


@dataclass(frozen=True)
class RunStatus:
    """The whole run: `running` until it closes; `failure` is the first error, if any."""

    running: bool
    sources: tuple[SourceStatus, ...]
    stages: tuple[StageStatus, ...]
    failure: str | None = None

    def problems(self) -> list[str]:
        """Why the run is not healthy (empty when every stage and source is alive)."""
        out = [f"run failed: {self.failure}"] if self.failure else []
        if not self.running:
            out.append("the pipeline is not running")
        out += [f"stage {s.id} is not running" for s in self.stages if not s.alive]
        out += [f"source {s.id}: {s.error or 'failed'}" for s in self.sources if s.state == "error"]
        return out


def source_state(ended: bool, end: str | None, reconnecting: bool, frames: int) -> SourceState:
    """The state of a source from what the runner knows about it."""
    if ended:
        return "error" if end == "error" else "ended"
    if reconnecting:
        return "reconnecting"
    return "running" if frames else "starting"
