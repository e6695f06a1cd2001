"""detect.haar on real stills and video, checked against YuNet (an independent DNN detector)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.errors import ModelError
from pipeline.frame import Detections, Frame
from pipeline.stage import StageContext, get_kind
from stages.detect_haar import HaarDetector, HaarOptions

FACES = ["images/face_man_happy_intel_f0008.jpg", "images/face_woman_happy_pexels_f0313.jpg"]
YUNET = "face_detection/yunet/face_detection_yunet_2023mar.onnx"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = np.maximum(a[:2], b[:2])
    x2, y2 = np.minimum(a[2:], b[2:])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return float(inter / (area - inter))


def yunet_face(models_dir: Path, image: np.ndarray) -> np.ndarray:
    """The most confident YuNet face as xyxy."""
    h, w = image.shape[:2]
    net = cv2.FaceDetectorYN.create(str(models_dir / YUNET), "", (w, h), 0.6)
    _, faces = net.detect(image)
    assert faces is not None and len(faces) >= 1
    x, y, fw, fh = faces[np.argmax(faces[:, -1]), :4]
    return np.array([x, y, x + fw, y + fh], np.float32)


def run(image: np.ndarray, tmp_path: Path, **options: object) -> Frame:
    stage = HaarDetector(HaarOptions(**options), StageContext(stage_id="haar", output_dir=tmp_path))
    stage.setup()
    frame = Frame(source="cam", seq=0, pts=0.0, wall=time.time(), image=image)
    out = stage.process(frame)
    stage.close()
    return out


def largest(det: Detections) -> np.ndarray:
    return det.xyxy[np.argmax(det.area)]


def test_registered() -> None:
    assert get_kind("detect.haar") is HaarDetector


@pytest.mark.parametrize("name", FACES)
def test_finds_the_face_yunet_finds(media: Path, models_dir: Path, tmp_path: Path, name: str) -> None:
    image = cv2.imread(str(media / name))
    det = run(image, tmp_path).detections
    assert len(det) == 1
    assert det.label[0] == "face" and det.score[0] == 1.0
    assert iou(largest(det), yunet_face(models_dir, image)) >= 0.4


def test_downscale_gives_the_same_face_in_full_frame_pixels(media: Path, tmp_path: Path) -> None:
    image = cv2.imread(str(media / FACES[1]))
    full = largest(run(image, tmp_path).detections)
    half = largest(run(image, tmp_path, downscale=0.5).detections)
    assert iou(full, half) >= 0.6
    assert half[2] > image.shape[1] / 2  # the face is on the right half: boxes were mapped back


def test_no_face_on_title_frame(media: Path, tmp_path: Path) -> None:
    cap = cv2.VideoCapture(str(media / "videos/no_face_caminandes_title.mp4"))
    ok, image = cap.read()
    cap.release()
    assert ok
    assert len(run(image, tmp_path).detections) == 0


def test_appends_to_existing_detections(media: Path, tmp_path: Path) -> None:
    image = cv2.imread(str(media / FACES[0]))
    image.setflags(write=False)
    stage = HaarDetector(HaarOptions(label="head", class_id=3), StageContext(stage_id="haar"))
    stage.setup()
    earlier = Detections.create([[0, 0, 10, 10]], score=[0.5], label=["person"])
    frame = Frame(source="cam", seq=0, pts=0.0, wall=0.0, image=image, detections=earlier)
    det = stage.process(frame).detections
    assert list(det.label) == ["person", "head"]
    assert list(det.class_id) == [0, 3]


def test_bad_scale_factor_reads_must_be_above_one() -> None:
    with pytest.raises(ValidationError, match="must be > 1"):
        HaarOptions(scale_factor=1.0)
    with pytest.raises(ValidationError):
        HaarOptions(min_neighbors=-1)
    with pytest.raises(ValidationError):
        HaarOptions(downscale=1.5)
    with pytest.raises(ValidationError, match="larger than max_size"):
        HaarOptions(min_size=(100, 100), max_size=(50, 50))


def test_missing_cascade_is_a_clear_error(tmp_path: Path) -> None:
    stage = HaarDetector(HaarOptions(cascade="haarcascade_frontalfaec.xml"), StageContext(stage_id="haar"))
    with pytest.raises(ModelError) as err:
        stage.setup()
    message = str(err.value)
    assert "haarcascade_frontalfaec.xml" in message and "cascade folder" in message
    assert "did you mean" in message and "haarcascade_frontalface_alt.xml" in message
    with pytest.raises(ModelError, match="not found"):
        HaarDetector(HaarOptions(cascade=str(tmp_path / "nope.xml")), StageContext(stage_id="h")).setup()


def test_cascade_by_short_name_or_path(tmp_path: Path) -> None:
    HaarDetector(HaarOptions(cascade="haarcascade_frontalface_alt2"), StageContext(stage_id="h")).setup()
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(ModelError, match="could not be loaded"):
        HaarDetector(HaarOptions(cascade=str(bad)), StageContext(stage_id="h")).setup()


def test_overlap_filter_keeps_the_face_not_the_chin(media: Path, tmp_path: Path) -> None:
    # On this clip the cascade also fires on the mouth and chin (a box ~34 px lower); the level
    # weights rank the real face first, so the overlap filter keeps exactly one box: the upper one.
    cap = cv2.VideoCapture(str(media / "videos/face_headpose_male_smiling_intel.mp4"))
    ok, image = cap.read()
    assert ok
    both = run(image, tmp_path, overlap=None).detections.xyxy
    kept = run(image, tmp_path).detections.xyxy
    assert len(both) == 2 and len(kept) == 1
    assert kept[0][1] == min(both[:, 1])  # the upper box: eyes and forehead, not the chin
