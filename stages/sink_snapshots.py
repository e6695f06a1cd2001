"""`sink.snapshots`: a JPEG per event of the event model, the frame with the event's box drawn.

Files are named by event id (`<id>.jpg`, and `<id>-crop.jpg` with `crop`) in `<output>/snapshots/`
by default; the event's `snapshot` field gets the path (relative to the output folder), so
event sinks after this one (`sink.mqtt`, `sink.webhook`, `sink.jsonl`) carry it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from pipeline.errors import ConfigError, StageError
from pipeline.frame import Frame
from pipeline.stage import Options, Stage, StageContext, register
from stages.event_model import OutEvent, out_events, replace_out_events
from stages.sink_paths import output_path, relative_to_output

_COLOUR = (0, 200, 255)  # BGR amber: readable on most scenes


class SnapshotsSinkOptions(Options):
    """Options of `sink.snapshots`."""

    folder: str = Field("snapshots", description="output folder, relative to the run's output folder")
    types: list[str] | None = Field(None, description="only events of these types (default: all)")
    crop: bool = Field(False, description="also save the box itself as <id>-crop.jpg")
    crop_margin: float = Field(
        0.1, ge=0, le=1, description="margin around the crop, a fraction of the box size"
    )
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality (1-100)")


def draw_event(image: np.ndarray, event: OutEvent) -> np.ndarray:
    """A copy of the image with the event's box and `label #track type` drawn (unchanged without a box)."""
    out = np.ascontiguousarray(image).copy()
    if event.box is None:
        return out
    x1, y1, x2, y2 = (int(round(v)) for v in event.box)
    thick = max(2, out.shape[0] // 360)
    cv2.rectangle(out, (x1, y1), (x2, y2), _COLOUR, thick)
    track = f" #{event.track_id}" if event.track_id is not None else ""
    text = f"{event.label or ''}{track} {event.type}".strip()
    cv2.putText(
        out, text, (x1, max(y1 - 2 * thick, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _COLOUR, 1, cv2.LINE_AA
    )
    return out


def crop_box(image: np.ndarray, box: tuple[float, float, float, float], margin: float) -> np.ndarray | None:
    """The box grown by `margin` (a fraction of its size) on each side, clipped to the image; None if empty."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    return image[top:bottom, left:right] if right > left and bottom > top else None


@register("sink.snapshots")
class SnapshotsSink(Stage[SnapshotsSinkOptions]):
    """Save one JPEG per event (see the module doc); the frame's events gain their `snapshot` path.

    Summary: snapshots = folder, count.
    """

    stateful = True

    def __init__(self, options: SnapshotsSinkOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self.folder = output_path(context, options.folder)
        self.count = 0

    def setup(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"sink.snapshots cannot create {self.folder}: {exc.strerror or exc}") from exc

    def process(self, frame: Frame) -> Frame:
        changed = {}
        params = [cv2.IMWRITE_JPEG_QUALITY, self.options.jpeg_quality]
        for event in out_events(frame, self.options.types):
            path = self.folder / f"{event.id}.jpg"
            self._write(path, draw_event(frame.image, event), params)
            if self.options.crop and event.box is not None:
                crop = crop_box(frame.image, event.box, self.options.crop_margin)
                if crop is not None:
                    self._write(self.folder / f"{event.id}-crop.jpg", crop, params)
            changed[event.id] = event.with_files(snapshot=relative_to_output(self.context, path))
            self.count += 1
        if changed:
            self.context.report["snapshots"] = {"folder": str(self.folder), "count": self.count}
        return replace_out_events(frame, changed)

    def _write(self, path: Path, image: np.ndarray, params: list[int]) -> None:
        if not self.folder.is_dir():
            self.setup()
        if not cv2.imwrite(str(path), image, params):
            raise StageError(f"sink.snapshots could not write {path}")
