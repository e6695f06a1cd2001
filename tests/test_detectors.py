"""Detectors and classifiers on real models and images (expected values from the manifests)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.catalog import InputSpec
from models.classifiers import build_classifier
from models.detector_factory import build_detector
from models.detectors import Detector
from models.geometry import box_iou, clip_boxes, expand_boxes
from pipeline.errors import ModelError
from pipeline.frame import Detections

pytestmark = pytest.mark.model

CLASSROOM = "images/people_classroom_4persons_intel_f0000.jpg"
FACES = [
    "images/face_man_happy_intel_f0008.jpg",
    "images/face_woman_happy_pexels_f0313.jpg",
    "images/face_woman_neutral_pexels_f0000.jpg",
    "images/face_woman_surprise_hand_occluded_pexels_f0156.jpg",
]
TF_BACKEND = {"tensorflow"}  # rows needing the TensorFlow import get its markers


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the sha256 verification cache out of the user's home."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def image(media: Path):
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = cv2.imread(str(media / name))
            assert cache[name] is not None, name
        return cache[name]

    return get


@pytest.fixture(scope="module")
def detector():
    """Each (model, backend) is loaded once per module; OpenVINO in f32 so runtimes can be compared."""
    cache: dict[tuple[str, str], Detector] = {}

    def get(model: str, backend: str) -> Detector:
        if (model, backend) not in cache:
            extra = {"precision": "f32"} if backend == "openvino" else {}
            cache[(model, backend)] = build_detector(
                model, backend, "CPU" if backend != "auto" else "AUTO", threads=2, **extra
            )
        return cache[(model, backend)]

    return get


def _marks(backend: str, slow: bool = False) -> list:
    marks = [pytest.mark.tensorflow] if backend in TF_BACKEND else []
    return marks + ([pytest.mark.slow] if slow or backend in TF_BACKEND else [])


def _people(dets: Detections) -> Detections:
    return dets[dets.label == "person"]


PERSON_CASES = [
    # model, backend, image, minimum persons, minimum best score, best box (from the manifests / OpenCV runs)
    ("yolox-nano", "openvino", "astronaut.png", 1, 0.9, [11, 20, 369, 507]),
    ("yolox-nano", "opencv", "astronaut.png", 1, 0.9, [11, 20, 369, 507]),
    ("yolox-nano", "tensorflow", "astronaut.png", 1, 0.9, [11, 20, 369, 507]),
    ("yolox-nano", "openvino", CLASSROOM, 4, 0.8, None),
    ("yolox-nano", "opencv", CLASSROOM, 4, 0.8, None),
    ("ssd-mobilenet-v1-coco", "tensorflow", "astronaut.png", 1, 0.6, [3, 8, 368, 500]),
    ("ssd-mobilenet-v1-coco", "openvino", "astronaut.png", 1, 0.6, [3, 8, 368, 500]),
    ("ssd-mobilenet-v1-coco", "tensorflow", "grace_hopper.jpg", 1, 0.6, None),
    ("pedestrian-ssdlite", "openvino", "astronaut.png", 1, 0.9, [3, 32, 373, 509]),
    ("pedestrian-ssdlite", "tensorflow", "astronaut.png", 1, 0.9, [3, 32, 373, 509]),
    ("person-detection-retail-0013", "openvino", CLASSROOM, 4, 0.9, None),
]


@pytest.mark.parametrize(
    ("model", "backend", "name", "count", "score", "box"),
    [
        pytest.param(*case, marks=_marks(case[1]), id=f"{case[0]}-{case[1]}-{Path(case[2]).stem}")
        for case in PERSON_CASES
    ],
)
def test_people_are_found(detector, image, model, backend, name, count, score, box) -> None:
    dets = detector(model, backend).detect(image(name))
    people = _people(dets)
    assert len(people) >= count, (people.score, people.xyxy)
    assert people.score.max() >= score
    h, w = image(name).shape[:2]
    assert (
        (people.xyxy >= 0).all()
        and (people.xyxy[:, [0, 2]] <= w).all()
        and (people.xyxy[:, [1, 3]] <= h).all()
    )
    if box is not None:
        assert box_iou(people.xyxy[:1], [box])[0, 0] >= 0.85, people.xyxy[0]


def test_yolox_finds_the_tie_and_the_retail_detector_skips_the_portrait(detector, image) -> None:
    dets = detector("yolox-nano", "openvino").detect(image("grace_hopper.jpg"))
    assert {"person", "tie"} <= set(dets.label[dets.score > 0.8])
    assert dets.class_id[dets.label == "tie"][0] == 27
    assert len(detector("person-detection-retail-0013", "openvino").detect(image("astronaut.png"))) == 0


FACE_CASES = [
    ("yunet", "openvino"),
    ("yunet", "opencv"),
    ("blazeface-short-range", "openvino"),
    ("blazeface-short-range", "tensorflow"),
    ("blazeface-full-range", "openvino"),
    ("blazeface-back", "tensorflow"),
]
# astronaut: YuNet x,y,w,h = 178,63,90,113; BlazeFace short range 0.352,0.161,0.183,0.183 of 512 px (MANIFEST.md)
ASTRONAUT_FACE = {"yunet": [178, 63, 268, 176], "blazeface": [180, 82, 274, 176]}


@pytest.mark.parametrize(
    ("model", "backend"), [pytest.param(m, b, marks=_marks(b, slow=False)[:1]) for m, b in FACE_CASES]
)
def test_faces_are_found_with_landmarks(detector, image, model, backend) -> None:
    det = detector(model, backend)
    faces = det.detect(image("astronaut.png"))
    assert len(faces) == 1 and faces.score[0] > 0.85 and faces.label[0] == "face"
    expected = ASTRONAUT_FACE["yunet" if model == "yunet" else "blazeface"]
    assert box_iou(faces.xyxy, [expected])[0, 0] >= (0.8 if model == "yunet" or "short" in model else 0.6)
    points = faces.attributes["landmarks"]
    assert points.shape == (1, 5 if model == "yunet" else 6, 2)
    x1, y1, x2, y2 = faces.xyxy[0]
    eyes = points[0, :2]
    assert ((eyes[:, 0] > x1) & (eyes[:, 0] < x2) & (eyes[:, 1] > y1) & (eyes[:, 1] < y2)).all()
    for name in FACES:
        assert len(det.detect(image(name))) == 1, name


def test_small_far_faces_in_the_classroom(detector, image) -> None:
    assert len(detector("yunet", "openvino").detect(image(CLASSROOM))) == 4
    assert len(detector("yunet", "opencv").detect(image(CLASSROOM))) == 4


def _assert_same(a: Detections, b: Detections) -> None:
    """Same detections: each box of `a` matches one of `b` (IoU >= 0.9, score within 0.02, same label)."""
    assert len(a) == len(b), (a.score, b.score)
    if not len(a):
        return
    iou = box_iou(a.xyxy, b.xyxy)
    match = iou.argmax(axis=1)
    assert len(set(match.tolist())) == len(a)
    assert (iou[np.arange(len(a)), match] >= 0.9).all(), iou
    np.testing.assert_allclose(a.score, b.score[match], atol=0.02)
    assert list(a.label) == list(b.label[match])


@pytest.mark.parametrize(
    ("model", "backends", "names"),
    [
        pytest.param("yolox-nano", ("openvino", "opencv"), ("grace_hopper.jpg", CLASSROOM), id="yolox-ov-cv"),
        pytest.param(
            "yolox-nano",
            ("openvino", "tensorflow"),
            ("grace_hopper.jpg", CLASSROOM),
            marks=_marks("tensorflow"),
            id="yolox-ov-tf",
        ),
        pytest.param(
            "pedestrian-ssdlite",
            ("openvino", "tensorflow"),
            ("astronaut.png", "grace_hopper.jpg", CLASSROOM),
            marks=_marks("tensorflow"),
            id="ssdlite-ov-tf",
        ),
        pytest.param(
            "blazeface-back",
            ("openvino", "tensorflow"),
            ("astronaut.png", CLASSROOM, FACES[0]),
            marks=_marks("tensorflow")[:1],
            id="blazeface-ov-litert",
        ),
    ],
)
def test_one_model_on_two_backends_gives_the_same_detections(detector, image, model, backends, names) -> None:
    first, second = (detector(model, b) for b in backends)
    assert first.info.backend == backends[0] and second.info.backend == backends[1]
    for name in names:
        _assert_same(first.detect(image(name)), second.detect(image(name)))


def test_detect_many_equals_detect(detector, image) -> None:
    names = ["astronaut.png", "grace_hopper.jpg", CLASSROOM]
    for model, backend in (
        ("yolox-nano", "openvino"),
        ("yunet", "opencv"),
        ("ssd-mobilenet-v1-coco", "openvino"),
    ):
        det = detector(model, backend)
        for single, batched in zip(
            (det.detect(image(n)) for n in names), det.detect_many([image(n) for n in names]), strict=True
        ):
            _assert_same(single, batched)


def test_info_reports_what_runs(detector) -> None:
    info = detector("yolox-nano", "openvino").info
    assert (info.model, info.format, info.backend, info.device, info.precision) == (
        "yolox-nano",
        "onnx",
        "openvino",
        "CPU",
        "f32",
    )
    assert info.threads == 2 and info.load_seconds > 0 and info.as_dict()["task"] == "object_detection"
    auto = build_detector("blazeface-back", "auto")
    assert auto.info.backend in ("openvino", "tensorflow") and auto.info.precision


def test_a_user_yolo_file_with_a_labels_file(tmp_path: Path, models_dir: Path, image) -> None:
    model = tmp_path / "my_yolo.onnx"
    shutil.copy(models_dir / "yolo/yolox_nano.onnx", model)
    labels = tmp_path / "names.txt"
    labels.write_text((models_dir / "yolo/coco80_labels.txt").read_text())
    yolox_input = InputSpec(colour="BGR", resize="letterbox", pad_value=114)  # this file is a YOLOX export
    det = build_detector(str(model), "openvino", labels=str(labels), input=yolox_input, precision="f32")
    found = det.detect(image("grace_hopper.jpg"))
    assert det.info.model == "my_yolo" and {"person", "tie"} <= set(found.label)
    with pytest.raises(ModelError, match="unknown option"):
        build_detector("yolox-nano", "openvino", colour="RGB")


def test_classifiers_run_the_catalog_preprocessing(detector, image) -> None:
    img = image("astronaut.png")
    face = detector("yunet", "opencv").detect(img)

    def crop(margin: float) -> np.ndarray:
        x1, y1, x2, y2 = clip_boxes(expand_boxes(face.xyxy[:1], margin), img.shape[1], img.shape[0])[
            0
        ].astype(int)
        return img[y1:y2, x1:x2]

    fer = build_classifier("fer2013-mini-xception", "openvino", "CPU")
    rows = fer.classify([crop(fer.crop_margin), crop(fer.crop_margin)])
    assert rows.shape == (2, 7) and fer.labels is not None and fer.labels[int(rows[0].argmax())] == "happy"
    assert rows[0].max() > 0.95  # manifest: happy 0.998
    age_gender = build_classifier("age-gender-recognition-retail-0013", "auto")
    out = age_gender.classify([crop(0.1)])  # the manifest's reference values are at a 10 % margin
    columns = age_gender.columns
    assert out.shape == (1, 3) and columns == {"age_conv3": slice(0, 1), "prob": slice(1, 3)}
    assert (
        30 < out[0, 0] * 100 < 45 and out[0, columns["prob"]][0] > 0.8
    )  # manifest: age 37.5, P(female) 0.93
    assert build_classifier("ssrnet-gender-imdb", "openvino").classify([crop(0.25)])[0, 0] < 0.5  # female
    with pytest.raises(ModelError, match="not a classifier"):
        build_classifier("yunet")
    with pytest.raises(ModelError, match="not a detector"):
        build_detector("fer2013-mini-xception")


@pytest.mark.tensorflow
@pytest.mark.slow
def test_keras_classifier_matches_the_ir(image) -> None:
    crop = cv2.resize(image("astronaut.png")[50:190, 165:285], (80, 90))
    keras = build_classifier("fer2013-mini-xception", "tensorflow")
    ir = build_classifier("fer2013-mini-xception", "openvino", "CPU", precision="f32")
    assert keras.info.format == "keras" and ir.info.format == "ir"
    np.testing.assert_allclose(keras.classify([crop]), ir.classify([crop]), atol=1e-4)


@pytest.mark.model
def test_a_closed_opencv_yunet_says_so(image) -> None:
    yunet = build_detector("yunet", "opencv", "CPU", threads=1)  # its own: the shared one stays open
    assert len(yunet.detect(image("astronaut.png"))) >= 1
    yunet.close()
    with pytest.raises(ModelError, match="after close"):
        yunet.detect(image("astronaut.png"))
