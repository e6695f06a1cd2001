"""`filter.motion`: mark where and whether a fixed camera's picture moves (`frame.motion`).

A thin shell over `stages.motion.MotionDetector` (one per source). Put it before a gated
detector (`gate:` on detect.*): the detector then runs only on frames with motion, plus
periodic re-checks of what it last found (see `stages.detect_gate`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pipeline.frame import Frame
from pipeline.stage import Options, Stage, StageContext, register
from stages.motion import MotionDetector, MotionSettings


class MotionOptions(Options):
    """Options of `filter.motion`. Sizes marked "small px" are pixels of the shrunk picture."""

    width: int = Field(320, ge=32, le=4096, description="shrink the picture to this width (px) first")
    method: Literal["diff", "average", "mog2"] = Field(
        "diff",
        description="diff: change since the previous frame (cheapest; what stands still is not motion); "
        "average: change from a running-average background (also what stopped recently); "
        "mog2: OpenCV's Gaussian-mixture background (more robust to swaying trees, slower)",
    )
    threshold: int = Field(
        15, ge=1, le=255, description="gray-level difference (0-255) that counts as change (diff, average)"
    )
    alpha: float = Field(
        0.02,
        gt=0,
        le=1,
        description="average: background update rate per frame (0-1); higher follows lighting drift faster "
        "but absorbs a still object sooner",
    )
    blur: int = Field(5, ge=0, le=31, description="Gaussian blur kernel side (small px, odd; 0 = none)")
    dilate: int = Field(2, ge=0, le=10, description="dilation passes joining changed pixels into blobs")
    min_area: int = Field(
        40, ge=1, le=1_000_000, description="smallest changed blob that counts as motion (small px²)"
    )
    lighting_change: float = Field(
        0.5,
        gt=0,
        le=1,
        description="fraction of the picture changed at once that means a lighting change: the "
        "background is re-learned and one full-frame motion box is reported",
    )
    ignore: list[list[list[float]]] = Field(
        default_factory=list,
        max_length=64,
        description="polygons [[x, y], ...] where motion is ignored (a timestamp, trees); "
        "full-frame pixels, or fractions of the frame when `normalized`",
    )
    normalized: bool = Field(False, description="`ignore` points are fractions (0-1) of the frame size")

    @field_validator("ignore")
    @classmethod
    def _polygons(cls, v: list[list[list[float]]]) -> list[list[list[float]]]:
        for poly in v:
            if len(poly) < 3 or any(len(p) != 2 for p in poly):
                raise ValueError("each polygon needs at least 3 [x, y] points")
        return v


@register("filter.motion")
class MotionFilter(Stage[MotionOptions]):
    """Set `frame.motion` to the boxes of moving regions (empty when the scene is still).

    The image and detections are kept. Cheap: about a millisecond a frame at the default width.
    """

    stateful = True  # the background model follows each source frame by frame

    def __init__(self, options: MotionOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self._detectors: dict[str, MotionDetector] = {}
        self._moving = 0

    def _detector(self, frame: Frame) -> MotionDetector:
        found = self._detectors.get(frame.source)
        if found is None:
            o = self.options
            settings = MotionSettings(**o.model_dump(exclude={"ignore", "normalized"}))
            polygons = o.ignore
            if o.normalized:
                h, w = frame.image.shape[:2]
                polygons = [[[x * w, y * h] for x, y in poly] for poly in polygons]
            found = self._detectors[frame.source] = MotionDetector(settings, polygons)
        return found

    def process(self, frame: Frame) -> Frame:
        detector = self._detector(frame)
        boxes = detector.detect(frame.image)
        self._moving += bool(len(boxes))
        report = self.context.report
        report["frames_with_motion"] = self._moving
        report["lighting_changes"] = sum(d.lighting_changes for d in self._detectors.values())
        return frame.replace(motion=boxes)

    def end_stream(self, source: str) -> list[Frame]:
        self._detectors.pop(source, None)
        return []
