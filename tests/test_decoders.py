"""Model-family decoders: synthetic tensors with one planted anchor (exact answers), then one
real-model check per decoder (`model` marker) running the shipped file through OpenVINO."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import openvino
import pytest

from models.blazeface import BLAZEFACE_INPUT_SIZES, blazeface_anchors, blazeface_input, decode_blazeface
from models.geometry import xyxy_to_xywh
from models.labels import label_for, load_labels
from models.ssd import (
    SSD_MOBILENET_V1_QUANT_BOXES,
    SSD_MOBILENET_V1_QUANT_SCORES,
    decode_detection_output,
    decode_ssd_anchors,
    decode_tfod,
    dequantize,
)
from models.yolo import (
    decode_yolo,
    decode_yolov5,
    decode_yolov8,
    decode_yolox,
    detect_yolo_layout,
    yolox_grid,
    yolox_input,
)
from models.yunet import decode_yunet, yunet_input

# -- YOLO ------------------------------------------------------------------------------------


def yolox_output(size: tuple[int, int], classes: int = 80) -> np.ndarray:
    """A raw YOLOX head (width, height) = size with a little noise and nothing detected."""
    rows = len(yolox_grid(size)[0])
    out = np.random.default_rng(0).normal(0, 0.3, (1, rows, 5 + classes)).astype(np.float32)
    out[..., 4:] = 0.01
    return out


def test_decode_yolox_places_one_anchor_exactly() -> None:
    size = (320, 256)  # width != height: 40x32 + 20x16 + 10x8 = 1680 cells
    out = yolox_output(size)
    assert out.shape[1] == 1680
    row = 40 * 32 + 3 * 20 + 5  # stride 16, gy = 3, gx = 5
    out[0, row, :5] = [0.5, 0.25, np.log(2), np.log(3), 0.9]
    out[0, row, 5 + 7] = 0.8
    out[0, row + 1, :5] = [-0.5, 0.25, np.log(2), np.log(3), 0.5]  # same box, weaker: suppressed
    out[0, row + 1, 5 + 7] = 0.8
    out[0, 2 * 40 + 30, :5] = [0, 0, 0, 0, 1.0]  # stride 8, gy = 2, gx = 30, another class
    out[0, 2 * 40 + 30, 5 + 2] = 0.6
    boxes, scores, classes = decode_yolox(out, size, conf=0.3, nms_iou=0.45)
    np.testing.assert_allclose(boxes, [[72, 28, 104, 76], [236, 12, 244, 20]], rtol=1e-5)
    np.testing.assert_allclose(scores, [0.72, 0.6], rtol=1e-6)
    assert classes.tolist() == [7, 2] and classes.dtype == np.int32 and boxes.dtype == np.float32
    assert detect_yolo_layout(out, size) == "yolox"
    np.testing.assert_array_equal(decode_yolo(out, size, 0.3, 0.45)[0], boxes)


def test_decode_yolox_rejects_a_mismatched_grid() -> None:
    with pytest.raises(ValueError, match="1680 cells"):
        decode_yolox(yolox_output((416, 416)), (320, 256), 0.3, 0.45)


def pixel_head(size: tuple[int, int], classes: int, obj: bool) -> np.ndarray:
    """A v5-style [A, 4 + obj + C] head: every anchor's centre on the grid, 3 anchors per cell."""
    grid, stride = yolox_grid(size)
    centres = np.repeat((grid + 0.5) * stride, 3, axis=0)
    rows = np.zeros((len(centres), 4 + int(obj) + classes), np.float32)
    rows[:, :2], rows[:, 2:4] = centres, 10.0
    return rows


def test_decode_yolov5_and_auto_layout() -> None:
    rows = pixel_head((320, 320), classes=3, obj=True)
    rows[100, :] = [50, 60, 20, 40, 0.5, 0.1, 0.9, 0.2]
    boxes, scores, classes = decode_yolov5(rows[None], conf=0.25, nms_iou=0.45)
    np.testing.assert_allclose(boxes, [[40, 40, 60, 80]])
    np.testing.assert_allclose(scores, [0.45], rtol=1e-6)
    assert classes.tolist() == [1]
    assert detect_yolo_layout(rows[None], (320, 320)) == "yolov5"
    np.testing.assert_array_equal(decode_yolo(rows[None], (320, 320), 0.25, 0.45)[0], boxes)


def test_decode_yolov8_and_auto_layout() -> None:
    rows = pixel_head((320, 320), classes=4, obj=False)
    rows[7, :] = [50, 60, 20, 40, 0.1, 0.2, 0.3, 0.7]
    rows[8, :] = [52, 60, 20, 40, 0.1, 0.2, 0.3, 0.6]  # overlaps, same class: suppressed
    out = rows.T[None]  # [1, 4 + C, A]
    boxes, scores, classes = decode_yolov8(out, conf=0.25, nms_iou=0.45)
    np.testing.assert_allclose(boxes, [[40, 40, 60, 80]])
    np.testing.assert_allclose(scores, [0.7], rtol=1e-6)
    assert classes.tolist() == [3]
    assert detect_yolo_layout(out, (320, 320)) == "yolov8"
    assert len(decode_yolo(out, (320, 320), 0.25, 0.45, max_det=0)[0]) == 0


def test_decode_yolo_forced_and_unknown_layout() -> None:
    rows = pixel_head((320, 320), classes=1, obj=True)
    rows[0, 4:] = [1.0, 1.0]
    assert len(decode_yolo(rows, (320, 320), 0.5, 0.5, layout="yolov5")[0]) == 1
    with pytest.raises(ValueError, match="2100 cells"):  # 3 anchors per cell is not a YOLOX head
        decode_yolo(rows, (320, 320), 0.5, 0.5, layout="yolox")
    with pytest.raises(ValueError, match="unknown YOLO layout"):
        decode_yolo(rows, (320, 320), 0.5, 0.5, layout="yolov9000")


# -- SSD -------------------------------------------------------------------------------------


def test_decode_tfod_reads_num_and_swaps_to_xyxy() -> None:
    boxes = np.zeros((1, 10, 4), np.float32)
    boxes[0, :3] = [[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.4, 0.4]]
    scores = np.array([[0.6, 0.9, 0.2] + [0.99] * 7], np.float32)  # rows past num are padding
    classes = np.array([[1, 3, 1] + [5] * 7], np.float32)
    xyxy, s, c = decode_tfod(boxes, scores, classes, num=np.array([3.0]), conf=0.5)
    np.testing.assert_allclose(xyxy, [[0, 0, 1, 1], [0.2, 0.1, 0.6, 0.5]])
    np.testing.assert_allclose(s, [0.9, 0.6])
    assert c.tolist() == [3, 1] and c.dtype == np.int32
    assert len(decode_tfod(boxes[0], scores[0], classes[0], conf=0.5)[0]) == 9  # no num, no batch


def test_decode_detection_output_stops_at_minus_one() -> None:
    out = np.zeros((1, 1, 5, 7), np.float32)
    out[0, 0] = [
        [0, 1, 0.7, 0.1, 0.2, 0.3, 0.4],
        [0, 1, 0.95, 0.5, 0.5, 0.6, 0.9],
        [0, 2, 0.3, 0, 0, 1, 1],
        [-1, 0, 0, 0, 0, 0, 0],
        [0, 1, 0.99, 0, 0, 1, 1],  # after the end marker: garbage
    ]
    xyxy, s, c = decode_detection_output(out, conf=0.5)
    np.testing.assert_allclose(xyxy, [[0.5, 0.5, 0.6, 0.9], [0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_allclose(s, [0.95, 0.7])
    assert c.tolist() == [1, 1]


def test_dequantize() -> None:
    q = np.array([191, 192, 0], np.uint8)
    np.testing.assert_allclose(
        dequantize(q, *SSD_MOBILENET_V1_QUANT_BOXES), [0, 0.0790279, -15.094324], rtol=1e-5
    )
    assert dequantize(np.uint8(255), *SSD_MOBILENET_V1_QUANT_SCORES) == pytest.approx(0.99609375)


def test_decode_ssd_anchors_one_anchor() -> None:
    anchors = np.array([[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1], [0.52, 0.42, 0.4, 0.4]], np.float32)
    enc = np.zeros((1, 3, 4), np.float32)
    enc[0, 0] = [1.0, -2.0, 5 * np.log(2), 0.0]  # yc 0.52, xc 0.42, h 0.4, w 0.4
    scores = np.zeros((1, 3, 4), np.float32)
    scores[0, :, 0] = 0.9  # background column
    scores[0, 0, 3] = 0.8
    scores[0, 2, 1] = 0.7  # the same box as anchor 0, another class: class-agnostic NMS drops it
    xyxy, s, c = decode_ssd_anchors(enc, scores, anchors, conf=0.4, nms_iou=0.6)
    np.testing.assert_allclose(xyxy, [[0.22, 0.32, 0.62, 0.72]], atol=1e-6)
    np.testing.assert_allclose(s, [0.8])
    assert c.tolist() == [2]  # background dropped: column 3 is class 2
    _, s, c = decode_ssd_anchors(enc, scores, anchors, conf=0.4, background=False)
    assert c.tolist() == [0, 0] and s.tolist() == pytest.approx([0.9, 0.9])  # column 0 is a class now


# -- BlazeFace -------------------------------------------------------------------------------


def test_blazeface_anchor_layout() -> None:
    counts = {v: len(blazeface_anchors(v)) for v in BLAZEFACE_INPUT_SIZES}
    assert counts == {"full_range": 2304, "back": 896, "short_range": 896}
    short = blazeface_anchors("short_range")
    np.testing.assert_allclose(short[:3], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    np.testing.assert_allclose(short[512:519], [[1 / 16, 1 / 16]] * 6 + [[3 / 16, 1 / 16]])
    full = blazeface_anchors("full_range")
    np.testing.assert_allclose(
        full[[0, 1, 48, -1]], [[1 / 96, 1 / 96], [3 / 96, 1 / 96], [1 / 96, 3 / 96], [95 / 96] * 2]
    )
    with pytest.raises(ValueError, match="unknown BlazeFace variant"):
        blazeface_anchors("long_range")


def test_decode_blazeface_one_anchor() -> None:
    anchors = blazeface_anchors("short_range")
    regressors = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -10.0, np.float32)
    i = 600
    regressors[0, i, :4] = [12.8, -6.4, 25.6, 38.4]  # /128: offset (0.1, -0.05), size (0.2, 0.3)
    regressors[0, i, 4:] = np.arange(12) * 1.28  # keypoint k offset (0.02 k, 0.02 k + 0.01)
    logits[0, i] = 1000.0  # clipped to 80 before the sigmoid: no overflow
    boxes, scores, points = decode_blazeface(regressors, logits, anchors, 128)
    ax, ay = anchors[i]
    np.testing.assert_allclose(boxes, [[ax + 0.0, ay - 0.2, ax + 0.2, ay + 0.1]], atol=1e-6)
    np.testing.assert_allclose(scores, [1.0])
    expected_points = anchors[i] + np.arange(12).reshape(6, 2) * 0.01
    np.testing.assert_allclose(points, expected_points[None], atol=1e-6)
    assert decode_blazeface(regressors, logits - 2000, anchors, 128)[2].shape == (0, 6, 2)


# -- YuNet -----------------------------------------------------------------------------------


def yunet_outputs(size: tuple[int, int]) -> dict[str, np.ndarray]:
    outputs = {}
    for s in (8, 16, 32):
        n = (size[0] // s) * (size[1] // s)
        outputs |= {f"cls_{s}": np.zeros((1, n, 1)), f"obj_{s}": np.zeros((1, n, 1))}
        outputs |= {f"bbox_{s}": np.zeros((1, n, 4)), f"kps_{s}": np.zeros((1, n, 10))}
    return outputs


def test_decode_yunet_one_anchor() -> None:
    size = (320, 160)  # stride 16: 20 columns x 10 rows
    outputs = yunet_outputs(size)
    i = 3 * 20 + 7  # row 3, column 7
    outputs["cls_16"][0, i] = 0.81
    outputs["obj_16"][0, i] = 1.2  # clipped to 1
    outputs["bbox_16"][0, i] = [0.5, 0.25, np.log(2), np.log(3)]
    outputs["kps_16"][0, i] = np.arange(10) / 10
    boxes, scores, landmarks = decode_yunet(outputs, size)
    np.testing.assert_allclose(boxes, [[104, 28, 136, 76]], rtol=1e-6)  # centre (120, 52), 32 x 48
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)
    expected = (np.array([7, 3]) + np.arange(10).reshape(5, 2) / 10) * 16
    np.testing.assert_allclose(landmarks, expected[None], rtol=1e-6)
    assert decode_yunet(yunet_outputs(size), size)[2].shape == (0, 5, 2)


# -- labels ----------------------------------------------------------------------------------


def test_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("???\nperson\n  bicycle \n???\ncar\n\n")
    labels = load_labels(path)
    assert labels == ["???", "person", "bicycle", "???", "car"]
    assert label_for(labels, 0, offset=1) == "person"
    assert label_for(labels, 4) == "car"
    assert label_for(labels, 9) == "9" and label_for(labels, -3, offset=1) == "-3"


# -- real models (OpenVINO) ------------------------------------------------------------------


def model_file(relative: str) -> Path:
    return Path(os.environ["VIGIL_MODELS"].split(os.pathsep)[0]) / relative


@pytest.fixture(scope="module")
def core() -> openvino.Core:
    return openvino.Core()  # tests run the runtime themselves; models/ never imports it


def read(media: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(media / name))
    assert image is not None, f"cannot read {media / name}"
    return image


def run_yolox(core: openvino.Core, image: np.ndarray) -> list[tuple[str, float, np.ndarray]]:
    model = core.compile_model(model_file("yolo/yolox_nano.onnx"))
    tensor, box = yolox_input(image)
    output = model(tensor)[0]
    assert detect_yolo_layout(output, (416, 416)) == "yolox"
    boxes, scores, classes = decode_yolo(output, (416, 416), conf=0.3, nms_iou=0.45)
    labels = load_labels(model_file("yolo/coco80_labels.txt"))
    return [
        (label_for(labels, c), float(s), b)
        for b, s, c in zip(box.to_original(boxes), scores, classes, strict=True)
    ]


@pytest.mark.model
def test_real_yolox_astronaut(core: openvino.Core, media: Path) -> None:
    found = run_yolox(core, read(media, "astronaut.png"))
    label, score, (x1, y1, x2, y2) = found[0]
    assert label == "person" and score >= 0.85
    assert x1 <= 178 and y1 <= 63 and x2 >= 268 and y2 >= 176  # contains her face (YuNet box)
    assert y2 - y1 > 0.8 * 512  # and most of her body


@pytest.mark.model
def test_real_yolox_grace_hopper(core: openvino.Core, media: Path) -> None:
    found = {label: (score, box) for label, score, box in run_yolox(core, read(media, "grace_hopper.jpg"))}
    assert found["person"][0] >= 0.85 and found["tie"][0] >= 0.8
    (px1, py1, px2, py2), (tx1, ty1, tx2, ty2) = found["person"][1], found["tie"][1]
    assert px1 < (tx1 + tx2) / 2 < px2 and py1 < (ty1 + ty2) / 2 < py2


@pytest.mark.model
def test_real_yunet_astronaut(core: openvino.Core, media: Path) -> None:
    model = core.compile_model(model_file("face_detection/yunet/face_detection_yunet_2023mar.onnx"))
    tensor, box = yunet_input(read(media, "astronaut.png"))
    result = model(tensor)
    outputs = {
        f"{k}_{s}": result[model.output(f"{k}_{s}")]
        for k in ("cls", "obj", "bbox", "kps")
        for s in (8, 16, 32)
    }
    boxes, scores, landmarks = decode_yunet(outputs)
    assert len(boxes) == 1 and scores[0] >= 0.9
    np.testing.assert_allclose(xyxy_to_xywh(box.to_original(boxes))[0], [178, 63, 90, 113], atol=3)
    right_eye, left_eye = box.points_to_original(landmarks)[0, :2]
    assert right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left


BLAZEFACE_EXPECTED = {  # MANIFEST.md: normalised x, y, w, h and score on astronaut
    "full_range": ("face_detection_full_range.tflite", [0.338, 0.133, 0.208, 0.208], 0.94),
    "back": ("face_detection_back.tflite", [0.336, 0.145, 0.206, 0.206], 0.88),
    "short_range": ("face_detection_short_range.tflite", [0.352, 0.161, 0.183, 0.183], 0.92),
}


@pytest.mark.model
@pytest.mark.parametrize("variant", sorted(BLAZEFACE_EXPECTED))
def test_real_blazeface_astronaut(core: openvino.Core, media: Path, variant: str) -> None:
    filename, xywh, score = BLAZEFACE_EXPECTED[variant]
    model = core.compile_model(model_file(f"face_detection/blazeface/{filename}"))
    tensor, _ = blazeface_input(read(media, "astronaut.png"), variant)  # square image: no padding
    result = model(tensor)
    regressors, classificators = (result[model.output(i)] for i in (0, 1))
    assert regressors.shape[-1] == 16 and classificators.shape[-1] == 1
    boxes, scores, keypoints = decode_blazeface(
        regressors, classificators, blazeface_anchors(variant), BLAZEFACE_INPUT_SIZES[variant]
    )
    assert len(boxes) == 1 and keypoints.shape == (1, 6, 2)
    # 0.006 (3 px of 512): the weighted-NMS blend moves the box by a few thousandths
    np.testing.assert_allclose(xyxy_to_xywh(boxes)[0], xywh, atol=0.006)
    assert scores[0] == pytest.approx(score, abs=0.01)


@pytest.mark.model
def test_real_ssd_nopp_astronaut(core: openvino.Core, media: Path) -> None:
    model = core.compile_model(model_file("ssd/ssd_mobilenet_v1_coco_quant_nopp.tflite"))
    rgb = cv2.cvtColor(cv2.resize(read(media, "astronaut.png"), (300, 300)), cv2.COLOR_BGR2RGB)
    result = model(rgb[None])
    encodings = dequantize(result[model.output("Squeeze")], *SSD_MOBILENET_V1_QUANT_BOXES)
    scores = dequantize(result[model.output("convert_scores")], *SSD_MOBILENET_V1_QUANT_SCORES)
    anchors = np.load(model_file("ssd/ssd_mobilenet_v1_coco_quant_anchors.npy"))
    boxes, scores, classes = decode_ssd_anchors(encodings, scores, anchors)
    labels = load_labels(model_file("ssd/ssd_mobilenet_v1_coco_labelmap.txt"))
    assert label_for(labels, classes[0], offset=1) == "person"
    assert scores[0] == pytest.approx(0.65, abs=0.03)
    x1, y1, x2, y2 = boxes[0]
    assert x1 < 0.35 and y1 < 0.12 and x2 > 0.52 and y2 > 0.9  # around the astronaut


@pytest.mark.model
def test_real_person_detection_retail_classroom(core: openvino.Core, media: Path) -> None:
    xml = model_file("person_detection/person-detection-retail-0013/FP16/person-detection-retail-0013.xml")
    model = core.compile_model(xml)
    image = read(media, "images/people_classroom_4persons_intel_f0000.jpg")
    tensor = cv2.resize(image, (544, 320)).transpose(2, 0, 1)[None].astype(np.float32)
    boxes, scores, classes = decode_detection_output(model(tensor)[0], conf=0.5)
    assert len(boxes) == 4 and set(classes.tolist()) == {1}  # the 4 seated people
    assert np.all((boxes >= 0) & (boxes <= 1))
