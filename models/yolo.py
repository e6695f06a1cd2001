"""YOLO output decoding (YOLOX, YOLOv5-style, YOLOv8-style) into boxes, scores and class ids.

Every decoder returns `(xyxy float32 (N, 4) in model-input pixels, scores float32 (N,),
class_ids int32 (N,))`, best first, after a confidence threshold, class-aware NMS and `max_det`.
Each box gets one label, its best class (`score = obj * max(cls)`). Map boxes back to the frame
with the `Letterbox` used for the input. Sizes are `(width, height)` as in `letterbox`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from models.geometry import Letterbox, cxcywh_to_xyxy, letterbox
from models.nms import batched_nms

YOLO_LAYOUTS = ("yolox", "yolov5", "yolov8")


def _rows(output: np.ndarray) -> np.ndarray:
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 3 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2:
        raise ValueError(f"expected a YOLO output of shape [1, R, K] or [R, K], got {np.shape(output)}")
    return out


def _select(
    cxcywh: np.ndarray,
    class_scores: np.ndarray,
    conf: float,
    nms_iou: float,
    max_det: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    class_ids = class_scores.argmax(axis=1).astype(np.int32)
    scores = class_scores[np.arange(len(class_scores)), class_ids]
    keep = np.flatnonzero(scores > conf)
    xyxy, scores, class_ids = cxcywh_to_xyxy(cxcywh[keep]), scores[keep], class_ids[keep]
    kept = batched_nms(xyxy, scores, class_ids, nms_iou)[:max_det]
    return xyxy[kept], scores[kept].astype(np.float32), class_ids[kept]


def yolox_input(
    image_bgr: np.ndarray, input_size: tuple[int, int] = (416, 416), nchw: bool = True
) -> tuple[np.ndarray, Letterbox]:
    """BGR frame -> YOLOX input: float32 BGR 0..255 (no /255, no mean/std), letterboxed top-left
    with 114; [1, 3, H, W], or [1, H, W, 3] with `nchw=False` (the TF SavedModel)."""
    canvas, box = letterbox(image_bgr, input_size, pad_value=114)
    tensor = canvas.astype(np.float32)[None]
    return (tensor.transpose(0, 3, 1, 2) if nchw else tensor), box


def yolox_grid(
    input_size: tuple[int, int], strides: Sequence[int] = (8, 16, 32)
) -> tuple[np.ndarray, np.ndarray]:
    """Cell offsets (A, 2) as (gx, gy) and their strides (A, 1), in YOLOX row order.

    Rows are stride by stride, each grid row-major (y outer, x inner): for 416x416 and
    strides 8/16/32 that is 52*52 + 26*26 + 13*13 = 3549 rows.
    """
    width, height = input_size
    grids, steps = [], []
    for s in strides:
        gy, gx = np.mgrid[0 : height // s, 0 : width // s]
        grids.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
        steps.append(np.full((gx.size, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(steps).astype(np.float32)


@lru_cache(maxsize=8)
def _shared_grid(input_size: tuple[int, int], strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """`yolox_grid`, built once per input size and kept read-only (decoding runs every frame)."""
    grid, stride = yolox_grid(input_size, strides)
    grid.flags.writeable = stride.flags.writeable = False
    return grid, stride


def decode_yolox(
    output: np.ndarray,
    input_size: tuple[int, int],
    conf: float,
    nms_iou: float,
    strides: Sequence[int] = (8, 16, 32),
    max_det: int = 300,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a raw YOLOX head: [1, A, 5 + C] or [A, 5 + C] rows (tx, ty, tw, th, obj, cls...).

    obj and cls are already sigmoid-ed (so obj * cls <= obj, and rows whose obj is below `conf`
    are skipped before decoding); the box columns are raw: cx = (tx + gx) * s,
    cy = (ty + gy) * s, w = exp(tw) * s, h = exp(th) * s. The model input is BGR 0..255 (no
    normalisation) letterboxed top-left with 114. `input_size` is (width, height).
    """
    rows = _rows(output)
    grid, stride = _shared_grid(tuple(input_size), tuple(strides))
    if len(rows) != len(grid):
        raise ValueError(
            f"YOLOX output has {len(rows)} rows but a {input_size} input with strides {tuple(strides)} "
            f"has {len(grid)} cells; wrong input_size/strides, or not a raw YOLOX head (try layout='yolov5')"
        )
    # score = obj * cls with cls <= 1: only rows whose obj passes can pass, so decode just those
    cand = np.flatnonzero(rows[:, 4] > conf)
    rows, grid, stride = rows[cand], grid[cand], stride[cand]
    centre = (rows[:, :2] + grid) * stride
    size = np.exp(np.minimum(rows[:, 2:4], 20.0)) * stride  # cap: exp overflows to inf on garbage rows
    return _select(np.concatenate([centre, size], axis=1), rows[:, 5:] * rows[:, 4:5], conf, nms_iou, max_det)


def decode_yolov5(
    output: np.ndarray, conf: float, nms_iou: float, max_det: int = 300
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode [1, A, 5 + C] rows (cx, cy, w, h in input pixels, obj, class probabilities).

    Also fits YOLOv7 and YOLOX exported with its decode step inside the graph.
    """
    rows = _rows(output)
    rows = rows[rows[:, 4] > conf]  # obj * cls <= obj: rows whose obj fails cannot pass
    return _select(rows[:, :4], rows[:, 5:] * rows[:, 4:5], conf, nms_iou, max_det)


def decode_yolov8(
    output: np.ndarray, conf: float, nms_iou: float, max_det: int = 300
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a channels-first [1, 4 + C, A] head (cx, cy, w, h in input pixels, class scores; no obj)."""
    rows = _rows(output).T
    return _select(rows[:, :4], rows[:, 4:], conf, nms_iou, max_det)


def detect_yolo_layout(output: np.ndarray, input_size: tuple[int, int]) -> str:
    """Guess the layout of a YOLO output, one of `YOLO_LAYOUTS`.

    - fewer rows than columns: channels-first [4 + C, A] -> "yolov8" (A is always > 4 + C);
    - otherwise rows are anchors. Pixel-space heads (v5) place some anchor centre in the right
      half of the input whatever the image, so the largest cx reaching width / 2 -> "yolov5";
      raw YOLOX grid offsets stay within a few cells -> "yolox".
    A head whose boxes are normalised to 0..1 looks raw; `decode_yolox` then rejects its
    anchor count, and the caller must pass the layout explicitly.
    """
    rows = _rows(output)
    if rows.shape[0] < rows.shape[1]:
        return "yolov8"
    return "yolov5" if rows[:, 0].max(initial=0.0) >= input_size[0] / 2 else "yolox"


def decode_yolo(
    output: np.ndarray,
    input_size: tuple[int, int],
    conf: float,
    nms_iou: float,
    layout: str = "auto",
    max_det: int = 300,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode any supported YOLO head; `layout="auto"` uses `detect_yolo_layout`.

    `layout` may force one of "yolox", "yolov5", "yolov8". `input_size` is (width, height).
    """
    chosen = detect_yolo_layout(output, input_size) if layout == "auto" else layout
    if chosen == "yolox":
        return decode_yolox(output, input_size, conf, nms_iou, max_det=max_det)
    if chosen == "yolov5":
        return decode_yolov5(output, conf, nms_iou, max_det)
    if chosen == "yolov8":
        return decode_yolov8(output, conf, nms_iou, max_det)
    raise ValueError(f"unknown YOLO layout {layout!r}; expected 'auto' or one of {YOLO_LAYOUTS}")
