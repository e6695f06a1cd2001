"""`sink.video`: write `frame.view` (the annotated picture when a render ran) to a video file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field, field_validator

from pipeline.errors import ConfigError, OutputError
from pipeline.frame import Frame, SourceInfo
from pipeline.stage import Options, Stage, StageContext, register
from stages.sink_paths import per_source_path
from stages.video_writer import VideoWriter, open_writer

DEFAULT_FPS = 25.0  # only when neither the options, the SourceInfo nor the run know the source's rate


class VideoSinkOptions(Options):
    """Options of `sink.video`."""

    path: str = Field(
        "annotated.mp4",
        description="output file, relative to the run's output folder; with several sources and no "
        "{source} in it, _<source> is added before the suffix (one file per source)",
    )
    fourcc: str | None = Field(
        None,
        description="4-character OpenCV codec code; default H.264 through PyAV for .mp4/.mkv/.mov "
        "(mp4v without PyAV), MJPG for .avi",
    )
    fps: float | None = Field(
        None, gt=0, description="frames per second written in the file; default: the source's own fps"
    )

    @field_validator("fourcc")
    @classmethod
    def _four_chars(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 4:
            raise ValueError("must be exactly 4 characters, e.g. mp4v, MJPG, XVID")
        return value


@dataclass
class _Output:
    path: Path
    writer: VideoWriter
    size: tuple[int, int]  # (width, height)
    frames: int = 0
    resized: bool = False


@register("sink.video")
class VideoSink(Stage[VideoSinkOptions]):
    """Write every frame it gets to a video file per source (same frame count and fps as the input
    on lossless links). The file is written in place and finalised by `end_stream`/`close`, so a
    run stopped with Ctrl-C still leaves a playable file. Frames pass through unchanged."""

    stateful = True

    def __init__(self, options: VideoSinkOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self._infos: dict[str, SourceInfo] = {}
        self._outputs: dict[str, _Output] = {}
        self.written: list[Path] = []

    @classmethod
    def output_paths(cls, options: VideoSinkOptions, output_dir: Path, sources: Sequence[str]) -> list[Path]:
        return [
            per_source_path(output_dir, options.path, s, several)
            for s in sources
            for several in (False, True)
        ]

    def start_stream(self, info: SourceInfo) -> None:
        self._infos[info.id] = info

    def _open(self, source: str, image: np.ndarray) -> _Output:
        info = self._infos.get(source) or self.context.sources.get(source)
        several = len(self.context.sources) > 1
        path = per_source_path(self.context, self.options.path, source, several)
        if path in self.written or any(out.path == path for out in self._outputs.values()):
            # A source the run did not announce: never let two sources share one file.
            path = per_source_path(self.context, self.options.path, source, True)
        fps = self.options.fps or (info.fps if info and info.fps > 0 else 0.0)
        if not fps:
            self.log.warning(
                "%s: source fps unknown; writing at %g fps (set `fps` to choose)", source, DEFAULT_FPS
            )
            fps = DEFAULT_FPS
        h, w = image.shape[:2]  # the frame we are given wins over SourceInfo (renders may resize)
        fourcc = self.options.fourcc
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = open_writer(path, fps, (w, h), fourcc, threads=self.context.threads)
        if writer is None:
            raise ConfigError(
                f"sink.video cannot open {path} with fourcc {fourcc!r} ({w}x{h} @ {fps:g} fps): "
                "try fourcc mp4v for .mp4 or MJPG for .avi, and check the folder is writable"
            )
        self.log.info("writing %s (%s, %dx%d @ %g fps)", path, writer.codec, w, h, fps)
        return _Output(path, writer, (w, h))

    def process(self, frame: Frame) -> Frame:
        image = frame.view
        out = self._outputs.get(frame.source)
        if out is None:
            out = self._outputs[frame.source] = self._open(frame.source, image)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if (image.shape[1], image.shape[0]) != out.size:
            if not out.resized:
                self.log.warning(
                    "%s: frame size changed to %dx%d; resizing to %dx%d",
                    frame.source,
                    image.shape[1],
                    image.shape[0],
                    *out.size,
                )
                out.resized = True
            image = cv2.resize(image, out.size, interpolation=cv2.INTER_AREA)
        out.writer.write(image)
        out.frames += 1
        return frame

    def _finish(self, source: str) -> None:
        out = self._outputs.pop(source, None)
        if out is None:
            return
        out.writer.release()  # writes the mp4 index: the file is valid from here on
        if out.frames and not _readable(out.path):  # OpenCV's writer reports no write error
            raise OutputError(f"sink.video could not write {out.path} (disk full or removed?)")
        self.written.append(out.path)
        files = self.context.report.setdefault("files", [])
        files.append({"path": str(out.path), "frames": out.frames})
        self.log.info("wrote %s (%d frames)", out.path, out.frames)

    def end_stream(self, source: str) -> list[Frame]:
        self._finish(source)
        return []

    def close(self) -> None:
        failed: OutputError | None = None
        for source in list(self._outputs):
            try:
                self._finish(source)
            except OutputError as exc:  # close the other files all the same
                failed = failed or exc
        if failed is not None:
            raise failed


def _readable(path: Path) -> bool:
    """Whether a written video opens and announces frames (its index made it to disk)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0
    finally:
        cap.release()
