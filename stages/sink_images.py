"""`sink.images`: save annotated snapshots (JPEG/PNG) of the frames worth keeping."""

from __future__ import annotations

from pathlib import Path

import cv2
from pydantic import Field, field_validator

from pipeline.errors import ConfigError, StageError
from pipeline.frame import Frame
from pipeline.stage import Options, Stage, StageContext, register
from stages.sink_paths import output_path, safe_source


class ImagesSinkOptions(Options):
    """Options of `sink.images`. Counting and intervals are per source."""

    folder: str = Field("snapshots", description="output folder, relative to the run's output folder")
    filename: str = Field(
        "{source}_{seq:06d}.jpg",
        description="file name pattern; fields {source}, {seq}, {index}, {pts}; the suffix "
        "(.jpg, .png, ...) picks the format",
    )
    only_with_detections: bool = Field(True, description="save only frames that have at least one detection")
    labels: list[str] | None = Field(
        None, description="save only frames with a detection of one of these labels (e.g. [person])"
    )
    every_n: int = Field(1, ge=1, description="save one of every N frames that qualify")
    min_interval_s: float = Field(
        0.0, ge=0, description="at least this many seconds of media time (pts) between two saved images"
    )
    max_images: int | None = Field(None, ge=1, description="stop saving after this many images in all")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality (1-100)")

    @field_validator("filename")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            name = value.format(source="cam", seq=1, index=1, pts=0.0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"bad pattern ({exc}); fields are {{source}}, {{seq}}, {{index}}, {{pts}}"
            ) from None
        if not cv2.haveImageWriter(name):
            raise ValueError(
                f"OpenCV cannot write {Path(name).suffix or 'files without a suffix'}; use .jpg or .png"
            )
        return value


@register("sink.images")
class ImagesSink(Stage[ImagesSinkOptions]):
    """Save `frame.view` as image files, filtered by detections/labels and thinned by
    `every_n`, `min_interval_s` and `max_images`. Frames pass through unchanged."""

    stateful = True

    def __init__(self, options: ImagesSinkOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self.folder = output_path(context, options.folder)
        self._qualified: dict[str, int] = {}
        self._last_pts: dict[str, float] = {}
        self.written: list[Path] = []

    def setup(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"sink.images cannot create {self.folder}: {exc.strerror or exc}") from exc

    def wanted(self, frame: Frame) -> bool:
        """Whether this frame passes the detection/label filters (before thinning)."""
        labels = self.options.labels
        if labels is not None:
            return any(str(label) in labels for label in frame.detections.label)
        return len(frame.detections) > 0 or not self.options.only_with_detections

    def process(self, frame: Frame) -> Frame:
        o = self.options
        if (o.max_images is not None and len(self.written) >= o.max_images) or not self.wanted(frame):
            return frame
        count = self._qualified.get(frame.source, 0)
        self._qualified[frame.source] = count + 1
        if count % o.every_n:
            return frame
        last = self._last_pts.get(frame.source)
        if last is not None and frame.pts - last < o.min_interval_s:
            return frame
        self._save(frame)
        self._last_pts[frame.source] = frame.pts
        if o.max_images is not None and len(self.written) == o.max_images:
            self.log.info("max_images (%d) reached; saving no more", o.max_images)
        return frame

    def _save(self, frame: Frame) -> None:
        name = self.options.filename.format(
            source=safe_source(frame.source), seq=frame.seq, index=frame.index, pts=frame.pts
        )
        path = self.folder / name
        jpeg = path.suffix.lower() in (".jpg", ".jpeg")
        params = [cv2.IMWRITE_JPEG_QUALITY, self.options.jpeg_quality] if jpeg else []
        if not self.folder.is_dir():
            self.setup()
        if not cv2.imwrite(str(path), frame.view, params):
            raise StageError(f"sink.images could not write {path}")
        self.written.append(path)

    def close(self) -> None:
        if self.written:
            self.context.report["images"] = {"folder": str(self.folder), "count": len(self.written)}
