"""`detect.hog`: OpenCV's HOG + linear SVM people detector (Dalal & Triggs, CVPR 2005).

The classical person detector, the counterpart of Haar cascades for faces: no model file and no
DNN runtime (the SVM ships inside OpenCV), so it suits edge boxes without OpenVINO. It finds
upright, whole people of at least 64x128 pixels (after `downscale`); seated, cut-off or small
people are missed, and it is slower than YOLOX-nano on OpenVINO (see the README). Its scores
are SVM margins squashed into 0..1 (`1 - exp(-margin)`), so thresholds stay in the usual range.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from models.nms import nms
from pipeline.frame import Detections, Frame
from pipeline.stage import StageContext, register
from stages.gated_detector import GatedDetectorStage, GatedOptions


class HogOptions(GatedOptions):
    """Options of `detect.hog`. Sizes are in pixels of the full frame unless said otherwise."""

    threshold: float = Field(
        0.3, ge=0, lt=1, description="minimum score (0..1; the SVM margin m mapped to 1 - exp(-m))"
    )
    downscale: float = Field(
        1.0, gt=0, le=2, description="detect on the frame resized by this factor (> 1 finds smaller people)"
    )
    win_stride: int = Field(8, ge=4, le=32, description="window step in px of the resized picture (8: dense)")
    padding: int = Field(
        8, ge=0, le=64, description="padding around the picture in px of the resized picture"
    )
    scale: float = Field(1.05, gt=1, le=2, description="image pyramid step (1.05 finds more, 1.2 is faster)")
    overlap: float = Field(0.45, gt=0, le=1, description="IoU above which overlapping boxes are merged")
    label: str = Field("person", description="label given to every detection")
    class_id: int = Field(0, ge=0, description="class id given to every detection (0 = person in COCO)")


def hog_people(
    hog: cv2.HOGDescriptor, image: np.ndarray, options: HogOptions
) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) float32 xyxy in pixels of `image`, scores (N,) float32) of the people found."""
    o = options
    small = image
    if o.downscale != 1.0:
        small = cv2.resize(image, None, fx=o.downscale, fy=o.downscale, interpolation=cv2.INTER_LINEAR)
    found, margins = hog.detectMultiScale(
        small, winStride=(o.win_stride, o.win_stride), padding=(o.padding, o.padding), scale=o.scale
    )
    if len(found) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    xywh = np.asarray(found, np.float32).reshape(-1, 4) / o.downscale
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    scores = (1.0 - np.exp(-np.asarray(margins, np.float32).reshape(-1))).astype(np.float32)
    keep = scores >= o.threshold
    boxes, scores = boxes[keep], scores[keep]
    if len(boxes) > 1:
        order = nms(boxes, scores, o.overlap)
        boxes, scores = boxes[order], scores[order]
    h, w = image.shape[:2]
    np.clip(boxes, 0, [w, h, w, h], out=boxes)
    return boxes, scores


@register("detect.hog")
class HogDetector(GatedDetectorStage[HogOptions]):
    """HOG + linear SVM people detector (OpenCV's default people SVM): no model file, no DNN runtime."""

    def __init__(self, options: HogOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self._hog: cv2.HOGDescriptor | None = None

    def setup(self) -> None:
        hog = cv2.HOGDescriptor()  # one per stage: detectMultiScale is not safe to share across threads
        hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))
        self._hog = hog
        self.context.report["models"] = [
            {"model": "opencv-hog-people", "backend": "opencv", "device": "CPU", "precision": "f32"}
        ]

    def _find(self, frames: list[Frame]) -> list[Detections]:
        if self._hog is None:
            self.setup()
        assert self._hog is not None
        o, out = self.options, []
        for frame in frames:
            boxes, scores = hog_people(self._hog, frame.image, o)
            n = len(boxes)
            out.append(Detections.create(boxes, scores, [o.class_id] * n, [o.label] * n))
        return out

    def close(self) -> None:
        self._hog = None
