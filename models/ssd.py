"""SSD output decoding: TF Object Detection API tensors, OpenVINO DetectionOutput, raw anchors.

Every decoder returns `(xyxy float32 (N, 4) normalised 0..1 as (x1, y1, x2, y2), scores
float32 (N,), class_ids int32 (N,))`, best first. Boxes are not clipped; the caller scales them
to pixels (and clips). Class ids are the model's own: see each function for its base.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from models.nms import nms

# Output quantisation of ssd/ssd_mobilenet_v1_coco_quant_nopp.tflite as (scale, zero_point):
# box encodings `Squeeze` and sigmoid scores `convert_scores` (see MANIFEST-detectors.md).
SSD_MOBILENET_V1_QUANT_BOXES = (0.07902787625789642, 191)
SSD_MOBILENET_V1_QUANT_SCORES = (0.00390625, 0)

_YXYX_TO_XYXY = [1, 0, 3, 2]


def _ranked(
    xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    return xyxy[order].astype(np.float32), scores[order].astype(np.float32), class_ids[order].astype(np.int32)


def dequantize(q: ArrayLike, scale: float, zero_point: int) -> np.ndarray:
    """uint8/int8 tensor -> float32 `(q - zero_point) * scale`."""
    return (np.asarray(q).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def decode_tfod(
    boxes: ArrayLike,
    scores: ArrayLike,
    classes: ArrayLike,
    num: ArrayLike | None = None,
    conf: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF Object Detection API / TFLite_Detection_PostProcess outputs, already NMS-ed.

    boxes [1, N, 4] (ymin, xmin, ymax, xmax), scores [1, N], classes [1, N] (floats), num [1]
    (optional; only the first `num` rows are read). A leading batch of 1 may be omitted. Class
    ids are passed through: 1-based for TF OD API graphs, 0-based for the TFLite detect model.
    """
    yxyx = np.asarray(boxes, np.float32).reshape(-1, 4)
    score = np.asarray(scores, np.float32).reshape(-1)
    cls = np.rint(np.asarray(classes, np.float32).reshape(-1)).astype(np.int32)
    n = len(score) if num is None else min(len(score), int(np.asarray(num).reshape(-1)[0]))
    keep = np.flatnonzero(score[:n] > conf)
    return _ranked(yxyx[keep][:, _YXYX_TO_XYXY], score[keep], cls[keep])


def decode_detection_output(out: ArrayLike, conf: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenVINO / Caffe DetectionOutput [1, 1, N, 7]: rows [image_id, label, conf, x1, y1, x2, y2].

    Reading stops at the first row whose image_id is -1. Labels pass through (OMZ person
    detectors: 1 = person).
    """
    rows = np.asarray(out, np.float32).reshape(-1, 7)
    ended = np.flatnonzero(rows[:, 0] < 0)
    rows = rows[: ended[0]] if ended.size else rows
    rows = rows[rows[:, 2] > conf]
    return _ranked(rows[:, 3:7], rows[:, 2], np.rint(rows[:, 1]).astype(np.int32))


def decode_ssd_anchors(
    box_encodings: ArrayLike,
    class_scores: ArrayLike,
    anchors: ArrayLike,
    conf: float = 0.4,
    nms_iou: float = 0.6,
    scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
    background: bool = True,
    max_det: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a raw SSD head (e.g. the `_nopp` SSD MobileNet) against its anchors.

    box_encodings [1, A, 4] (ty, tx, th, tw) and class_scores [1, A, K] are floats (run
    `dequantize` first); anchors [A, 4] are (yc, xc, h, w) normalised. With `scales = (sy, sx,
    sh, sw)`: yc = ty / sy * ha + ya, xc = tx / sx * wa + xa, h = exp(th / sh) * ha,
    w = exp(tw / sw) * wa. With `background=True` column 0 is dropped, so class id 0 is the
    first real class (COCO labelmap: label = lines[class_id + 1]). One class per anchor (the
    best), then class-agnostic NMS as TFLite_Detection_PostProcess does by default.
    """
    enc = np.asarray(box_encodings, np.float32).reshape(-1, 4)
    anc = np.asarray(anchors, np.float32).reshape(-1, 4)
    cls_scores = np.asarray(class_scores, np.float32).reshape(len(enc), -1)
    if background:
        cls_scores = cls_scores[:, 1:]
    class_ids = cls_scores.argmax(axis=1).astype(np.int32)
    scores = cls_scores[np.arange(len(cls_scores)), class_ids]
    keep = np.flatnonzero(scores > conf)
    scaled, anc = enc[keep] / np.asarray(scales, np.float32), anc[keep]
    centre = scaled[:, :2] * anc[:, 2:] + anc[:, :2]  # (yc, xc)
    half = np.exp(scaled[:, 2:]) * anc[:, 2:] / 2  # (h/2, w/2)
    yxyx = np.concatenate([centre - half, centre + half], axis=1)
    xyxy = yxyx[:, _YXYX_TO_XYXY]
    kept = nms(xyxy, scores[keep], nms_iou)[:max_det]
    return xyxy[kept].astype(np.float32), scores[keep][kept], class_ids[keep][kept]
