"""vigil engine: frames, stages, config, transport, runner."""

from pipeline.frame import Detections, Event, Frame, SourceInfo
from pipeline.stage import Options, Stage, StageContext, register

__all__ = ["Detections", "Event", "Frame", "Options", "SourceInfo", "Stage", "StageContext", "register"]
__version__ = "0.1.0"
