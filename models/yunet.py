"""YuNet (libfacedetection / OpenCV zoo face detector): input tensor and output decoding.

Input: the BGR frame letterboxed top-left into a zero canvas (640x640 for the shipped ONNX),
NCHW float32 0..255, no normalisation. Outputs per stride s in (8, 16, 32), already sigmoid-ed:
`cls_s`, `obj_s` [1, N, 1], `bbox_s` [1, N, 4], `kps_s` [1, N, 10], N = (W / s) * (H / s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from models.geometry import Letterbox, letterbox
from models.nms import nms


def yunet_input(
    image_bgr: np.ndarray, input_size: tuple[int, int] = (640, 640)
) -> tuple[np.ndarray, Letterbox]:
    """BGR frame -> [1, 3, H, W] float32 0..255 tensor and its top-left `Letterbox` (zero pad)."""
    canvas, box = letterbox(image_bgr, input_size, pad_value=0)
    return canvas.transpose(2, 0, 1)[None].astype(np.float32), box


def decode_yunet(
    outputs: Mapping[str, np.ndarray],
    input_size: tuple[int, int] = (640, 640),
    conf: float = 0.6,
    nms_iou: float = 0.3,
    strides: Sequence[int] = (8, 16, 32),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode YuNet outputs into (xyxy (N, 4), scores (N,), landmarks (N, 5, 2)) in input pixels.

    For anchor i at stride s (row r = i // (W / s), column c = i % (W / s)):
    score = sqrt(clip(cls) * clip(obj)); centre = ((c, r) + bbox[:2]) * s;
    size = exp(bbox[2:]) * s; landmark k = ((c, r) + kps[2k : 2k + 2]) * s. Then NMS.
    Landmarks: right eye, left eye, nose tip, right and left mouth corners.
    `outputs` is keyed 'cls_8', 'obj_8', 'bbox_8', 'kps_8', ...; `input_size` is (width, height).
    """
    width, _ = input_size
    boxes, scores, landmarks = [], [], []
    for s in strides:
        cls = np.clip(np.asarray(outputs[f"cls_{s}"], np.float32).reshape(-1), 0, 1)
        obj = np.clip(np.asarray(outputs[f"obj_{s}"], np.float32).reshape(-1), 0, 1)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score > conf)
        cells = np.stack([keep % (width // s), keep // (width // s)], axis=1).astype(np.float32)
        bbox = np.asarray(outputs[f"bbox_{s}"], np.float32).reshape(-1, 4)[keep]
        kps = np.asarray(outputs[f"kps_{s}"], np.float32).reshape(-1, 5, 2)[keep]
        centre = (cells + bbox[:, :2]) * s
        half = np.exp(bbox[:, 2:]) * s / 2
        boxes.append(np.concatenate([centre - half, centre + half], axis=1))
        scores.append(score[keep])
        landmarks.append((cells[:, None, :] + kps) * s)
    xyxy, score, points = np.concatenate(boxes), np.concatenate(scores), np.concatenate(landmarks)
    kept = nms(xyxy, score, nms_iou)
    return xyxy[kept].astype(np.float32), score[kept].astype(np.float32), points[kept].astype(np.float32)
