"""Non-maximum suppression: greedy (OpenCV does the work), class-aware, and weighted blending.

All functions take xyxy boxes (N, 4) and scores (N,) and suppress a box when its IoU with an
already kept, higher-scored box is strictly greater than `iou_threshold`. Ties in score keep
the lower index first.
"""

from __future__ import annotations

from typing import overload

import cv2
import numpy as np
from numpy.typing import ArrayLike

from models.geometry import box_iou, xyxy_to_xywh


def _descending(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="stable")


def nms(xyxy: ArrayLike, scores: ArrayLike, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; returns the kept indices (int64) by descending score.

    OpenCV (`cv2.dnn.NMSBoxes`) runs the suppression. It is given each box's rank instead of
    its score, so no score is thresholded away (OpenCV drops scores <= its threshold >= 0) and
    equal scores keep their index order.
    """
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if scores.size == 0:
        return np.zeros(0, np.int64)
    order = _descending(scores)
    ranks = np.empty(scores.size, np.float32)
    ranks[order] = np.arange(scores.size, 0, -1, dtype=np.float32)
    boxes = xyxy_to_xywh(xyxy).astype(np.float64)
    # OpenCV's stubs say Sequence[Sequence[float]]; the binding takes numpy arrays (no list copy)
    kept = cv2.dnn.NMSBoxes(boxes, ranks, 0.0, float(iou_threshold))  # type: ignore[arg-type]
    return np.asarray(kept, np.int64).reshape(-1)


def batched_nms(xyxy: ArrayLike, scores: ArrayLike, class_ids: ArrayLike, iou_threshold: float) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Each class is moved to its own disjoint region of the plane before one `nms` call (the
    torchvision trick); the offset is computed from the boxes' own extent, so negative or
    normalised coordinates are fine. Returns kept indices by descending score.
    """
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    classes = np.unique(np.asarray(class_ids).reshape(-1), return_inverse=True)[1]
    span = boxes.max() - boxes.min() + 1.0
    shifted = boxes - boxes.min() + (classes * span)[:, None]
    return nms(shifted, scores, iou_threshold)


@overload
def weighted_nms(
    xyxy: ArrayLike, scores: ArrayLike, iou_threshold: float, extra: None = None
) -> tuple[np.ndarray, np.ndarray, None]: ...
@overload
def weighted_nms(
    xyxy: ArrayLike, scores: ArrayLike, iou_threshold: float, extra: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def weighted_nms(
    xyxy: ArrayLike,
    scores: ArrayLike,
    iou_threshold: float,
    extra: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MediaPipe/BlazeFace weighted NMS: each cluster is replaced by its score-weighted mean.

    Repeatedly take the best remaining box; every remaining box whose IoU with it exceeds
    `iou_threshold` (the box itself included) forms its cluster. The output box is the
    score-weighted average of the cluster's boxes, its score is the best box's score, and
    `extra` rows (e.g. keypoints, any trailing shape) are averaged with the same weights.
    Returns (boxes float32 (K, 4), scores float32 (K,), blended extra or None), best first.
    """
    boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    score = np.asarray(scores, dtype=np.float32).reshape(-1)
    rows = None if extra is None else np.asarray(extra, dtype=np.float32)
    remaining = _descending(score)
    out_boxes, out_scores, out_extra = [], [], []
    while remaining.size:
        best = remaining[0]
        cluster = box_iou(boxes[best], boxes[remaining])[0] > iou_threshold
        cluster[0] = True  # a zero-area box has IoU 0 with itself but still stands for itself
        members = remaining[cluster]
        weights = score[members] if score[members].sum() > 0 else None  # np.average normalises
        out_boxes.append(np.average(boxes[members], axis=0, weights=weights))
        out_scores.append(score[best])
        if rows is not None:
            out_extra.append(np.average(rows[members], axis=0, weights=weights))
        remaining = remaining[~cluster]
    blended = None
    if rows is not None:
        blended = np.asarray(out_extra, np.float32).reshape(-1, *rows.shape[1:])
    return (
        np.asarray(out_boxes, np.float32).reshape(-1, 4),
        np.asarray(out_scores, np.float32),
        blended,
    )
