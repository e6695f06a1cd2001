"""Box geometry shared by the model wrappers: letterboxing, IoU, clipping, format conversion.

Boxes are float32 arrays whose last axis holds 4 numbers; `xyxy` means (x1, y1, x2, y2) corners,
`xywh` top-left plus size, `cxcywh` centre plus size. Pure numpy (and OpenCV for resizing): no
runtime is imported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike, DTypeLike


def _boxes(b: ArrayLike) -> np.ndarray:
    return np.asarray(b, dtype=np.float32).reshape(-1, 4)


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a model input: `canvas = original * scale + pad`.

    scale: resize factor applied to the original image (same on both axes);
    pad_x, pad_y: offset in canvas pixels of the resized image's top-left corner.
    """

    scale: float
    pad_x: float
    pad_y: float

    def to_original(self, xyxy: ArrayLike) -> np.ndarray:
        """Canvas-pixel boxes (N, 4) xyxy -> original-image pixels, float32 (N, 4)."""
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        return ((_boxes(xyxy) - pad) / np.float32(self.scale)).astype(np.float32)

    def points_to_original(self, points: ArrayLike) -> np.ndarray:
        """Canvas-pixel points (..., 2) as (x, y), e.g. landmarks -> original pixels, float32."""
        pts = np.asarray(points, dtype=np.float32)
        pad = np.array([self.pad_x, self.pad_y], np.float32)
        return ((pts - pad) / np.float32(self.scale)).astype(np.float32)


def letterbox(
    image: np.ndarray,
    size: tuple[int, int],
    *,
    pad_value: int = 114,
    center: bool = False,
    interpolation: int = cv2.INTER_LINEAR,
    max_scale: float | None = None,
) -> tuple[np.ndarray, Letterbox]:
    """Resize `image` into a `size = (width, height)` canvas, keeping its aspect ratio.

    The resized image is `int(w * r) x int(h * r)` with `r = min(W / w, H / h)` (the YOLOX
    recipe); the rest of the canvas is `pad_value`. `center=False` pastes it at the top-left
    (YOLOX, YuNet), `center=True` in the middle (BlazeFace). Returns the canvas (same dtype and
    channels as `image`) and the `Letterbox` that maps canvas boxes back to `image` pixels.
    `max_scale` caps `r` (1: a small image is padded at its own size, never enlarged).
    """
    out_w, out_h = size
    h, w = image.shape[:2]
    r = min(out_w / w, out_h / h, math.inf if max_scale is None else max_scale)
    new_w, new_h = max(1, int(w * r)), max(1, int(h * r))
    resized = (
        image if (new_w, new_h) == (w, h) else cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    )
    pad_x, pad_y = ((out_w - new_w) // 2, (out_h - new_h) // 2) if center else (0, 0)
    canvas = np.full((out_h, out_w, *image.shape[2:]), pad_value, dtype=image.dtype)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized.reshape(new_h, new_w, *image.shape[2:])
    return canvas, Letterbox(float(r), float(pad_x), float(pad_y))


def box_area(xyxy: np.ndarray) -> np.ndarray:
    """Area of each xyxy box (..., 4); boxes with negative width or height have area 0."""
    return np.clip(xyxy[..., 2] - xyxy[..., 0], 0, None) * np.clip(xyxy[..., 3] - xyxy[..., 1], 0, None)


def box_iou(a: ArrayLike, b: ArrayLike, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M).

    Computed in `dtype` (float32 by default; the evaluation uses float64 to match pycocotools).
    Empty inputs give an empty (N, M) matrix; pairs whose union is zero get IoU 0. Also the
    trackers' default similarity (`stages.tracking.iou_matrix`).
    """
    a = np.asarray(a, dtype=dtype).reshape(-1, 4)
    b = np.asarray(b, dtype=dtype).reshape(-1, 4)
    # Column by column, in place: a (N, M, 2) intermediate is several times slower at N = M = 1000.
    iw = np.minimum(a[:, None, 2], b[None, :, 2])
    iw -= np.maximum(a[:, None, 0], b[None, :, 0])
    np.clip(iw, 0, None, out=iw)
    ih = np.minimum(a[:, None, 3], b[None, :, 3])
    ih -= np.maximum(a[:, None, 1], b[None, :, 1])
    np.clip(ih, 0, None, out=ih)
    inter = iw
    inter *= ih
    union = box_area(a)[:, None] + box_area(b)[None, :]
    union -= inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def clip_boxes(xyxy: ArrayLike, width: int, height: int) -> np.ndarray:
    """Clip xyxy boxes to the image `[0, width] x [0, height]` (a new float32 array)."""
    limits = np.array([width, height, width, height], np.float32)
    return np.clip(_boxes(xyxy), 0, limits)


def expand_boxes(xyxy: ArrayLike, margin: float, square: bool = False) -> np.ndarray:
    """Grow each box by `margin * w` left and right and `margin * h` top and bottom.

    With `square=True` the box is first made square around its centre (side = max(w, h)), so
    the result has side `max(w, h) * (1 + 2 * margin)`. Not clipped: use `clip_boxes`.
    """
    b = _boxes(xyxy)
    centre = (b[:, :2] + b[:, 2:]) / 2
    wh = b[:, 2:] - b[:, :2]
    if square:
        wh = np.repeat(wh.max(axis=1, keepdims=True), 2, axis=1)
    half = wh * (0.5 + margin)
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def cxcywh_to_xyxy(b: ArrayLike) -> np.ndarray:
    """(cx, cy, w, h) -> (x1, y1, x2, y2), float32 (N, 4)."""
    b = _boxes(b)
    half = b[:, 2:] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def xywh_to_xyxy(b: ArrayLike) -> np.ndarray:
    """(x, y, w, h) top-left + size -> (x1, y1, x2, y2), float32 (N, 4)."""
    b = _boxes(b)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(b: ArrayLike) -> np.ndarray:
    """(x1, y1, x2, y2) -> (x, y, w, h) top-left + size, float32 (N, 4)."""
    b = _boxes(b)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
