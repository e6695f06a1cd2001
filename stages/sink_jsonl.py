"""`sink.jsonl`: the public results file, one JSON line per frame (`Frame.to_record()`)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from pydantic import Field

from pipeline.errors import ConfigError, OutputError
from pipeline.frame import Frame
from pipeline.stage import Options, Stage, StageContext, register
from stages.sink_paths import output_path, under


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

    @classmethod
    def output_paths(cls, options: JsonlSinkOptions, output_dir: Path, sources: Sequence[str]) -> list[Path]:
        return [under(output_dir, options.path)]

    def __init__(self, options: JsonlSinkOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self.path = output_path(context, options.path)
        self._file: IO[bytes] | None = None
        self._buffer: list[str] = []  # lines not yet written
        self._good = 0  # bytes of the file that end with a complete line
        self._last_flush = 0.0
        self.lines = 0

    def setup(self) -> None:
        if self._file is not None:  # set up again (a restart): keep appending, never truncate
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb", buffering=0)  # closed in close(); one write per flush
        except OSError as exc:
            raise ConfigError(f"sink.jsonl cannot write {self.path}: {exc.strerror or exc}") from exc
        self._last_flush = time.monotonic()
        self.log.info("writing %s", self.path)

    def process(self, frame: Frame) -> Frame:
        if not self.options.include_empty and not (len(frame.detections) or frame.events or frame.errors):
            return frame
        if self._file is None:
            self.setup()
        self._buffer.append(json.dumps(frame.to_record()) + "\n")
        now = time.monotonic()
        if (
            len(self._buffer) >= self.options.flush_every
            or now - self._last_flush >= self.options.flush_interval_s
        ):
            self._flush(now)
        return frame

    def _flush(self, now: float) -> None:
        """Write the waiting lines in one call; on a failed or short write (disk full) cut the
        file back to its last complete line and stop the run, naming the file."""
        self._last_flush = now
        if self._file is None or not self._buffer:
            return
        data = "".join(self._buffer).encode()
        try:
            written = self._file.write(data)
            if written != len(data):
                raise OSError(28, f"short write ({written} of {len(data)} bytes)")
        except OSError as exc:
            with contextlib.suppress(OSError):
                self._file.truncate(self._good)
            self._buffer.clear()  # those lines are lost; say so once
            raise OutputError(
                f"sink.jsonl cannot write {self.path}: {exc.strerror or exc} "
                f"(kept {self.lines} complete lines)"
            ) from None
        self._good += len(data)
        self.lines += len(self._buffer)
        self._buffer.clear()

    def end_stream(self, source: str) -> list[Frame]:
        self._flush(time.monotonic())
        return []

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._flush(time.monotonic())
        finally:
            self._file.close()
        self._file = None
        self.context.report.setdefault("files", []).append({"path": str(self.path), "lines": self.lines})
