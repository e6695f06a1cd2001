"""Box geometry (IoU, letterbox, conversions) and NMS against a tiny reference greedy NMS."""

from __future__ import annotations

import numpy as np
import pytest

from models.geometry import (
    Letterbox,
    box_iou,
    clip_boxes,
    cxcywh_to_xyxy,
    expand_boxes,
    letterbox,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from models.nms import batched_nms, nms, weighted_nms


def reference_nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Textbook greedy NMS, one pair at a time in float64."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(_iou(xyxy[i], xyxy[k]) <= iou_threshold for k in kept):
            kept.append(i)
    return kept


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union)


def random_boxes(rng: np.random.Generator, n: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    xy = rng.uniform(0, 100, (n, 2)) + offset
    wh = rng.uniform(5, 40, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32), rng.random(n).astype(np.float32)


# -- IoU -------------------------------------------------------------------------------------


def test_box_iou_known_values() -> None:
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]], np.float32)
    b = np.array([[1, 0, 3, 2], [0, 0, 2, 2], [5, 5, 6, 6]], np.float32)
    expected = [[2 / 6, 1, 0], [0, 1 / 4, 0]]
    iou = box_iou(a, b)
    assert iou.dtype == np.float32 and iou.shape == (2, 3)
    np.testing.assert_allclose(iou, expected, rtol=1e-6)
    assert box_iou(a, b, np.float64).dtype == np.float64


def test_box_iou_empty_and_degenerate() -> None:
    assert box_iou(np.zeros((0, 4)), np.ones((3, 4))).shape == (0, 3)
    assert box_iou(np.ones((2, 4)), np.zeros((0, 4))).shape == (2, 0)
    point = np.array([[1, 1, 1, 1]], np.float32)
    assert box_iou(point, point)[0, 0] == 0.0  # zero union -> 0, not NaN


# -- letterbox -------------------------------------------------------------------------------


def test_letterbox_top_left_geometry_and_round_trip() -> None:
    image = np.full((100, 200, 3), 7, np.uint8)  # h=100, w=200
    canvas, box = letterbox(image, (416, 416))
    assert canvas.shape == (416, 416, 3) and canvas.dtype == np.uint8
    assert box == Letterbox(scale=2.08, pad_x=0.0, pad_y=0.0)
    assert (canvas[:208] == 7).all() and (canvas[208:] == 114).all()  # int(100 * 2.08) = 208 rows
    original = np.array([[10, 20, 110, 90]], np.float32)
    on_canvas = original * box.scale + [box.pad_x, box.pad_y, box.pad_x, box.pad_y]
    np.testing.assert_allclose(box.to_original(on_canvas), original, rtol=1e-6)


def test_letterbox_centred_and_points() -> None:
    image = np.zeros((50, 100, 3), np.uint8)
    canvas, box = letterbox(image, (128, 128), pad_value=0, center=True)
    assert box == Letterbox(scale=1.28, pad_x=0.0, pad_y=32.0)  # 128x64 pasted at y = 32
    landmarks = np.array([[[0.0, 32.0], [128.0, 96.0]]], np.float32)
    np.testing.assert_allclose(box.points_to_original(landmarks), [[[0, 0], [100, 50]]], atol=1e-5)


def test_letterbox_non_square_canvas_and_same_size() -> None:
    image = np.arange(60, dtype=np.uint8).reshape(5, 12)  # grayscale passes through too
    canvas, box = letterbox(image, (12, 10))
    assert canvas.shape == (10, 12) and box.scale == 1.0
    assert (canvas[:5] == image).all() and (canvas[5:] == 114).all()


def test_letterbox_max_scale_pads_small_images_without_enlarging() -> None:
    """YuNet (catalog max_scale 1) misses faces that fill a small image once it is blown up to 640."""
    image = np.full((192, 192, 3), 9, np.uint8)
    canvas, box = letterbox(image, (640, 640), pad_value=0, max_scale=1.0)
    assert box == Letterbox(scale=1.0, pad_x=0.0, pad_y=0.0)
    assert (canvas[:192, :192] == 9).all() and (canvas[192:] == 0).all() and (canvas[:, 192:] == 0).all()
    assert letterbox(np.zeros((1280, 1280, 3), np.uint8), (640, 640), max_scale=1.0)[1].scale == 0.5


# -- small helpers ---------------------------------------------------------------------------


def test_conversions_round_trip() -> None:
    xyxy = np.array([[10, 20, 30, 60]], np.float32)
    np.testing.assert_array_equal(xyxy_to_xywh(xyxy), [[10, 20, 20, 40]])
    np.testing.assert_array_equal(xywh_to_xyxy([10, 20, 20, 40]), xyxy)
    np.testing.assert_array_equal(cxcywh_to_xyxy([[20, 40, 20, 40]]), xyxy)
    assert xyxy_to_xywh(np.zeros((0, 4))).shape == (0, 4)


def test_clip_and_expand() -> None:
    np.testing.assert_array_equal(clip_boxes([[-5, 3, 700, 500]], 640, 480), [[0, 3, 640, 480]])
    box = np.array([[10, 10, 30, 50]], np.float32)  # w 20, h 40
    np.testing.assert_allclose(expand_boxes(box, 0.1), [[8, 6, 32, 54]])
    np.testing.assert_allclose(expand_boxes(box, 0.0, square=True), [[0, 10, 40, 50]])
    np.testing.assert_allclose(expand_boxes(box, 0.25, square=True), [[-10, 0, 50, 60]])


# -- NMS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.7])
def test_nms_equals_reference_greedy(seed: int, threshold: float) -> None:
    boxes, scores = random_boxes(np.random.default_rng(seed), 80)
    kept = nms(boxes, scores, threshold)
    assert kept.tolist() == reference_nms(boxes.astype(np.float64), scores, threshold)


def test_nms_ties_zero_scores_and_empty() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [50, 50, 60, 61]], np.float32)
    scores = np.array([0.5, 0.5, 0.0, 0.0], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]  # equal scores: lower index wins; 0 is kept
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_is_per_class(seed: int) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores = random_boxes(rng, 90, offset=-50.0)  # negative coordinates too
    classes = rng.integers(0, 3, 90)
    kept = batched_nms(boxes, scores, classes, 0.4)
    expected = []
    for c in range(3):
        idx = np.flatnonzero(classes == c)
        expected += idx[reference_nms(boxes[idx].astype(np.float64), scores[idx], 0.4)].tolist()
    assert sorted(kept.tolist()) == sorted(expected)
    assert np.all(np.diff(scores[kept]) <= 0)


def test_batched_nms_different_classes_never_suppress() -> None:
    boxes = np.array([[0, 0, 1, 1]] * 3, np.float32)  # normalised and identical
    assert batched_nms(boxes, [0.9, 0.8, 0.7], [0, 1, 0], 0.5).tolist() == [0, 1]
    assert batched_nms(np.zeros((0, 4)), [], [], 0.5).shape == (0,)


def test_weighted_nms_blends_clusters() -> None:
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [100, 100, 110, 110]], np.float32)
    scores = np.array([0.6, 0.2, 0.9], np.float32)
    keypoints = np.array([[[0, 0]], [[4, 8]], [[1, 1]]], np.float32)
    out_boxes, out_scores, out_points = weighted_nms(boxes, scores, 0.3, keypoints)
    np.testing.assert_allclose(out_scores, [0.9, 0.6])
    np.testing.assert_allclose(out_boxes, [[100, 100, 110, 110], [0.5, 0, 10.5, 10]], rtol=1e-6)
    assert out_points is not None and out_points.shape == (2, 1, 2)
    np.testing.assert_allclose(out_points, [[[1, 1]], [[1, 2]]], rtol=1e-6)


def test_weighted_nms_separate_boxes_and_empty() -> None:
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [5, 5, 5, 5]], np.float32)  # last: zero area
    out_boxes, out_scores, extra = weighted_nms(boxes, [0.3, 0.5, 0.4], 0.3)
    np.testing.assert_array_equal(out_boxes, boxes[[1, 2, 0]])
    np.testing.assert_allclose(out_scores, [0.5, 0.4, 0.3])
    assert extra is None
    empty = weighted_nms(np.zeros((0, 4)), np.zeros(0), 0.3, np.zeros((0, 6, 2)))
    assert empty[0].shape == (0, 4) and empty[1].shape == (0,) and empty[2].shape == (0, 6, 2)
