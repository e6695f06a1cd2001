"""Crops for the classifier stages: which detections to classify, where to cut, and the pixels.

Pure functions over numpy arrays (OpenCV only for colour conversion), shared by
`classify.emotion`, `classify.age_gender` and `classify.keras`:

- `as_bgr`: any frame image (H×W×3, H×W gray, H×W×1, H×W×4) -> H×W×3 uint8 BGR;
- `select_rows`: rows of a `Detections` with a wanted label and a box at least `min_face` px;
- `crop_boxes`: boxes grown by a margin (fraction of the box on each side) and clamped to
  the frame, as integer pixel rectangles; boxes left with < 2 px on a side are empty;
- `cut_crops`: the rectangles' pixels (views, not copies);
- `eye_angles` / `aligned_crop`: a crop turned about its centre so the eyes (the first two of
  YuNet's five landmarks) are level, for the models that read upright faces better;
- `CropBatch`: the crops of several frames gathered for one batched inference, with
  (frame, row) bookkeeping to send results back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from models.geometry import clip_boxes, expand_boxes
from pipeline.frame import Detections

MIN_CROP_SIDE = 2  # px; smaller clamped crops (boxes almost off the frame) are not classified


def as_bgr(image: np.ndarray) -> np.ndarray:
    """The frame as H×W×3 uint8 BGR: gray (2-D or 1 channel) is replicated, BGRA loses alpha."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"cannot classify crops of an image of shape {img.shape}")
    return img


def select_rows(detections: Detections, labels: Sequence[str] | None, min_face: float = 0) -> np.ndarray:
    """Indices of the detections to classify: label in `labels` (None = every label) and
    the shorter box side >= `min_face` px."""
    keep = np.ones(len(detections), bool)
    if labels is not None:
        wanted = {str(x) for x in labels}
        keep &= np.array([str(lab) in wanted for lab in detections.label], bool)
    if min_face > 0 and len(detections):
        wh = detections.xyxy[:, 2:] - detections.xyxy[:, :2]
        keep &= wh.min(axis=1) >= min_face
    return np.flatnonzero(keep)


def crop_boxes(xyxy: np.ndarray, margin: float, width: int, height: int, square: bool = False) -> np.ndarray:
    """Integer crop rectangles (N, 4) x1, y1, x2, y2: each box grown by `margin` × its width
    (left and right) and × its height (top and bottom), then clamped to the frame. With
    `square` the box is first made square around its centre (side = its longer side).
    Coordinates are truncated to whole pixels (the way the catalog margins were measured).

    The rectangle is all zeros when the box itself keeps a side under `MIN_CROP_SIDE` px inside
    the frame (a box off the frame is not classified on the sliver its margin reaches into).
    """
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    grown = clip_boxes(expand_boxes(boxes, margin, square), width, height)
    rects = np.empty((len(grown), 4), np.int32)
    rects[:, :2] = np.floor(grown[:, :2])
    rects[:, 2:] = np.floor(grown[:, 2:])
    inside = clip_boxes(boxes, width, height)
    small = ((inside[:, 2:] - inside[:, :2]) < MIN_CROP_SIDE).any(axis=1) | (
        (rects[:, 2:] - rects[:, :2]) < 1
    ).any(axis=1)
    rects[small] = 0
    return rects


def valid_rects(rects: np.ndarray) -> np.ndarray:
    """Mask of the rectangles `crop_boxes` kept (non-empty)."""
    return (rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])


def cut_crops(image: np.ndarray, rects: np.ndarray) -> list[np.ndarray]:
    """The pixels of each (non-empty) rectangle: views into `image`."""
    return [image[y1:y2, x1:x2] for x1, y1, x2, y2 in rects.tolist()]


def eye_angles(landmarks: np.ndarray | None, n: int) -> np.ndarray:
    """Roll of each face in degrees (N,): the angle of the line from the first to the second
    landmark (YuNet: right eye, left eye, as seen on the image). 0 where landmarks are missing."""
    if landmarks is None or np.asarray(landmarks).dtype == np.dtype(object):
        return np.zeros(n)
    points = np.asarray(landmarks, np.float64).reshape(n, -1, 2)
    if points.shape[1] < 2:
        return np.zeros(n)
    d = points[:, 1] - points[:, 0]
    return np.degrees(np.arctan2(d[:, 1], d[:, 0]))


def aligned_crop(image: np.ndarray, box: np.ndarray, angle: float) -> np.ndarray:
    """The pixels of `box` (x1, y1, x2, y2, already grown; may reach off the frame) turned by
    `angle` degrees about its centre, so a face rolled by `angle` comes out upright. Pixels
    from off the frame are black, as a clamped crop has none."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(1, round(x2 - x1)), max(1, round(y2 - y1))
    rotation = cv2.getRotationMatrix2D(((x1 + x2) / 2, (y1 + y2) / 2), angle, 1.0)
    rotation[:, 2] += np.array([w / 2 - (x1 + x2) / 2, h / 2 - (y1 + y2) / 2])
    return cv2.warpAffine(image, rotation, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


@dataclass
class CropBatch:
    """Crops of several frames for one inference: `owners[k] = (frame index, detection row)`."""

    crops: list[np.ndarray] = field(default_factory=list)
    owners: list[tuple[int, int]] = field(default_factory=list)
    reused: list[tuple[int, int]] = field(default_factory=list)  # (frame, row) given a track's last reading

    def add(
        self,
        frame_index: int,
        image: np.ndarray,
        detections: Detections,
        rows: np.ndarray,
        margin: float,
        square: bool = False,
        align: bool = False,
    ) -> np.ndarray:
        """Crop the `rows` of one frame's detections (rows whose crop is empty are skipped);
        `align` turns each crop so the eyes are level (when the detector gave landmarks).
        Returns the rows that were cropped."""
        if not len(rows):
            return np.asarray(rows)
        bgr = as_bgr(image)
        h, w = bgr.shape[:2]
        rects = crop_boxes(detections.xyxy[rows], margin, w, h, square)
        ok = valid_rects(rects)
        landmarks = detections.attributes.get("landmarks")
        if align and landmarks is not None and landmarks.dtype != object:
            grown = expand_boxes(detections.xyxy[rows], margin, square)[ok]
            angles = eye_angles(landmarks[rows], len(rows))[ok]
            self.crops += [aligned_crop(bgr, b, a) for b, a in zip(grown, angles, strict=True)]
        else:
            self.crops += cut_crops(bgr, rects[ok])
        cropped = np.asarray(rows)[ok]
        self.owners += [(frame_index, int(r)) for r in cropped]
        return cropped

    def __len__(self) -> int:
        return len(self.crops)

    def per_frame(self, n_frames: int) -> list[list[tuple[int, int]]]:
        """For each frame: (crop index, detection row) pairs, in crop order, then (-1, row) for
        each row that repeats its track's last reading."""
        out: list[list[tuple[int, int]]] = [[] for _ in range(n_frames)]
        for k, (f, row) in enumerate(self.owners):
            out[f].append((k, row))
        for f, row in self.reused:
            out[f].append((-1, row))
        return out


def merge_column(
    existing: np.ndarray | None, n: int, rows: Iterable[int], values: Iterable[Any]
) -> list[Any]:
    """An attribute column of length `n`: `values` at `rows`, elsewhere the existing value
    (another stage may have filled those rows) or None."""
    column: list[Any] = [None] * n if existing is None else list(existing)
    for row, value in zip(rows, values, strict=True):
        column[row] = value
    return column
