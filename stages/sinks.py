"""Sinks: the ends of a pipeline. Each kind lives in its own module; importing this one
registers them all (`sink.video`, `sink.jsonl`, `sink.images`, `sink.display`).

Every sink is stateful (it holds files or windows) and returns the frame unchanged, so sinks
can be chained.
"""

from __future__ import annotations

from stages.sink_display import DisplaySink
from stages.sink_images import ImagesSink
from stages.sink_jsonl import JsonlSink
from stages.sink_video import VideoSink

__all__ = ["DisplaySink", "ImagesSink", "JsonlSink", "VideoSink"]
