"""Cheap motion detection at low resolution: which parts of a fixed camera's picture changed.

Pure image math, no frames: `MotionDetector.detect(image) -> boxes`. The picture is shrunk to
`width` pixels wide, turned gray and blurred; the previous frame ("diff", the default), a
running-average background or OpenCV's MOG2 mixture of Gaussians tells which pixels changed.
Frame differencing ignores what stands still (a person waiting, the ghost a person leaves in a
slow background) and follows lighting drift by itself, which is what gating a detector wants; the changed pixels
are dilated into blobs whose bounding boxes, mapped back to full-frame pixels, are the motion
boxes. Regions to ignore (a timestamp overlay, trees in the wind) are polygons painted out of
the change mask. A sudden change of most of the picture (lights switched on, the camera's
exposure or IR mode switching) is treated as a lighting change: the background is re-learned at
once, and one full-frame box is reported so whatever runs next looks at the whole picture again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Polygon = Sequence[Sequence[float]]
_KERNEL = np.ones((3, 3), np.uint8)  # dilation: 8-connected growth by one pixel a pass


def polygon_mask(shape: tuple[int, int], polygons: Sequence[Polygon], scale: float = 1.0) -> np.ndarray:
    """A uint8 (H, W) mask: 0 inside any polygon (ignored), 255 elsewhere.

    shape: (H, W) of the mask; polygons: lists of [x, y] points in pixels of the full frame;
    scale: factor from full-frame pixels to mask pixels.
    """
    mask = np.full(shape, 255, np.uint8)
    for poly in polygons:
        pts = np.round(np.asarray(poly, np.float64).reshape(-1, 2) * scale).astype(np.int32)
        cv2.fillPoly(mask, [pts], 0)
    return mask


def mask_boxes(changed: np.ndarray, min_area: int) -> np.ndarray:
    """Bounding boxes (M, 4) float32 xyxy of the blobs of a binary mask with >= `min_area` pixels,
    largest first."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((changed > 0).astype(np.uint8), connectivity=8)
    stats = stats[1:]  # label 0 is the background
    stats = stats[stats[:, cv2.CC_STAT_AREA] >= max(min_area, 1)]
    if len(stats) == 0:
        return np.zeros((0, 4), np.float32)
    stats = stats[np.argsort(-stats[:, cv2.CC_STAT_AREA], kind="stable")]
    x, y, w, h = (stats[:, i].astype(np.float32) for i in range(4))
    return np.stack([x, y, x + w, y + h], axis=1)


@dataclass(frozen=True)
class MotionSettings:
    """How `MotionDetector` works; every size is in pixels of the low-resolution picture.

    width: the picture is shrunk to this width first (the height keeps the aspect ratio).
    method: "diff" (difference with the previous frame: only what moves now), "average"
        (running-average background: also what stopped recently) or "mog2" (OpenCV's per-pixel
        Gaussian mixture: more robust to swaying leaves, slower).
    threshold: gray-level difference (0-255) that counts as change (diff, average).
    alpha: how fast the average background follows the picture, fraction per frame (0-1);
        larger adapts faster to lighting drift but absorbs a still person sooner.
    blur: Gaussian blur kernel side before comparing (odd; 0/1 = none), against sensor noise.
    dilate: dilation passes that join the changed pixels of one object into one blob.
    min_area: smallest blob, in low-resolution pixels, that counts as motion.
    lighting_change: fraction of the picture (0-1) that, changed at once, means a lighting
        change rather than motion.
    """

    width: int = 320
    method: Literal["diff", "average", "mog2"] = "diff"
    threshold: int = 15
    alpha: float = 0.02
    blur: int = 5
    dilate: int = 2
    min_area: int = 40
    lighting_change: float = 0.5


class MotionDetector:
    """Motion boxes of one camera, frame after frame (keeps the background of that camera)."""

    def __init__(self, settings: MotionSettings | None = None, ignore: Sequence[Polygon] = ()) -> None:
        self.settings = settings or MotionSettings()
        self.ignore = list(ignore)
        self._background: np.ndarray | None = None  # float32, running average (method "average")
        self._mog: cv2.BackgroundSubtractorMOG2 | None = None
        self._mask: np.ndarray | None = None  # 255 where motion counts, at low resolution
        self._scale = 1.0
        self.lighting_changes = 0

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        s = self.settings
        h, w = image.shape[:2]
        self._scale = min(1.0, s.width / w)
        small = image
        if self._scale < 1.0:
            size = (max(1, round(w * self._scale)), max(1, round(h * self._scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        gray = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if s.blur > 1:
            gray = cv2.GaussianBlur(gray, (s.blur | 1, s.blur | 1), 0)
        if self._mask is None or self._mask.shape != gray.shape:
            self._mask = polygon_mask(gray.shape[:2], self.ignore, self._scale)
            self._background = None
        return gray

    def _changed(self, gray: np.ndarray) -> np.ndarray | None:
        """The change mask (uint8 0/255), or None on the first frame (nothing to compare with)."""
        s = self.settings
        if s.method == "mog2":
            if self._mog is None:
                self._mog = cv2.createBackgroundSubtractorMOG2(history=500, detectShadows=False)
                self._mog.apply(gray, learningRate=1.0)
                return None
            return self._mog.apply(gray, learningRate=-1)
        if self._background is None:
            self._background = gray.astype(np.float32)
            return None
        diff = cv2.absdiff(gray, cv2.convertScaleAbs(self._background))
        _, changed = cv2.threshold(diff, s.threshold, 255, cv2.THRESH_BINARY)
        cv2.accumulateWeighted(gray, self._background, 1.0 if s.method == "diff" else s.alpha)
        return changed

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Motion boxes (M, 4) float32 xyxy in pixels of `image` (H x W x 3 BGR or H x W gray),
        largest first; empty when the picture is still (and on the first frame)."""
        s = self.settings
        gray = self._prepare(image)
        changed = self._changed(gray)
        if changed is None:
            return np.zeros((0, 4), np.float32)
        assert self._mask is not None
        changed = cv2.bitwise_and(changed, self._mask)
        if np.count_nonzero(changed) > s.lighting_change * np.count_nonzero(self._mask):
            self.lighting_changes += 1
            self._background, self._mog = gray.astype(np.float32), None
            if s.method == "mog2":
                self._changed(gray)  # a new mixture, seeded with this picture
            h, w = image.shape[:2]
            return np.array([[0, 0, w, h]], np.float32)
        if s.dilate:
            changed = cv2.dilate(changed, _KERNEL, iterations=s.dilate)
        boxes = mask_boxes(changed, s.min_area) / self._scale
        h, w = image.shape[:2]
        np.clip(boxes, 0, [w, h, w, h], out=boxes)
        return boxes
