"""vigil engine: frames, stages, config, transport, runner, and the Python API (`Pipeline`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.frame import Detections, Event, Frame, SourceInfo
from pipeline.stage import Options, Stage, StageContext, register

if TYPE_CHECKING:
    from pipeline.api import Pipeline, RunFailed

__all__ = [
    "Detections",
    "Event",
    "Frame",
    "Options",
    "Pipeline",
    "RunFailed",
    "SourceInfo",
    "Stage",
    "StageContext",
    "register",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The runner pulls in ZeroMQ and the transport: only when the API is asked for.
    if name in ("Pipeline", "RunFailed"):
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
