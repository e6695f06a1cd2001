"""`sink.jsonl`: the public results file, one JSON line per frame (`Frame.to_record()`)."""

from __future__ import annotations

import json
import time
from typing import IO

from pydantic import Field

from pipeline.errors import ConfigError
from pipeline.frame import Frame
from pipeline.stage import Options, Stage, StageContext, register
from stages.sink_paths import output_path


class JsonlSinkOptions(Options):
    """Options of `sink.jsonl`.

    Lines are flushed to the OS every `flush_every` frames and at least every `flush_interval_s`
    seconds, so a crash loses at most that much. The default flushes every line: a flush is one
    write() call (no fsync), microseconds against the milliseconds a frame takes, and a live
    camera's results are then on disk as soon as they are known.
    """

    path: str = Field(
        "results.jsonl",
        description="output file, relative to the run's output folder; one file for all sources "
        "(each line's `source` field tells them apart)",
    )
    flush_every: int = Field(1, ge=1, description="flush after this many lines (frames)")
    flush_interval_s: float = Field(
        1.0, gt=0, description="flush at least this often, in seconds of wall clock"
    )
    include_empty: bool = Field(
        True, description="write frames without detections, events or errors too (one line per frame)"
    )


@register("sink.jsonl")
class JsonlSink(Stage[JsonlSinkOptions]):
    """Append `json.dumps(frame.to_record())` for each frame: source, seq, pts, detections
    (box [x1, y1, x2, y2] px, score, label, class_id, track_id, attributes), plus index, events
    and errors when present. Frames pass through unchanged."""

    stateful = True

    def __init__(self, options: JsonlSinkOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self.path = output_path(context, options.path)
        self._file: IO[str] | None = None
        self._pending = 0
        self._last_flush = 0.0
        self.lines = 0

    def setup(self) -> None:
        if self._file is not None:  # set up again (a restart): keep appending, never truncate
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")  # closed in close()
        except OSError as exc:
            raise ConfigError(f"sink.jsonl cannot write {self.path}: {exc.strerror or exc}") from exc
        self._last_flush = time.monotonic()
        self.log.info("writing %s", self.path)

    def process(self, frame: Frame) -> Frame:
        if not self.options.include_empty and not (len(frame.detections) or frame.events or frame.errors):
            return frame
        if self._file is None:
            self.setup()
        assert self._file is not None
        self._file.write(json.dumps(frame.to_record()) + "\n")
        self.lines += 1
        self._pending += 1
        now = time.monotonic()
        if (
            self._pending >= self.options.flush_every
            or now - self._last_flush >= self.options.flush_interval_s
        ):
            self._flush(now)
        return frame

    def _flush(self, now: float) -> None:
        if self._file is not None:
            self._file.flush()
        self._pending, self._last_flush = 0, now

    def end_stream(self, source: str) -> list[Frame]:
        self._flush(time.monotonic())
        return []

    def close(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self.context.report.setdefault("files", []).append({"path": str(self.path), "lines": self.lines})
