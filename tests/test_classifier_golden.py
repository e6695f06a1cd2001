"""Classifier outputs on real face crops against golden JSON recorded from the code before the
crop conversion moved into the runtime (issue 16): same top class, outputs within 0.02.

The crops are the YuNet faces of tests/data/golden/detectors.json, cut with each model's
catalog margin. `pytest --update-golden tests/test_classifier_golden.py` records them again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_detector_golden import CASES, frames
from test_detector_golden import GOLDEN as DETECTIONS

GOLDEN = DETECTIONS.parent / "classifiers.json"
MODELS = ["emotions-recognition-retail-0003", "age-gender-recognition-retail-0013", "ssrnet-age-imdb"]


def face_crops(media: Path) -> list[tuple[np.ndarray, list[float]]]:
    """(image, face box) for every YuNet face of the golden detections."""
    faces = json.loads(DETECTIONS.read_text())["yunet/openvino"]
    images = {
        key: image
        for name, step, count in CASES["yunet/openvino"][2]
        for key, image in frames(name, step, count, media)
    }
    return [(images[key], d["box"]) for key, dets in sorted(faces.items()) for d in dets]


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_classifier_matches_golden(model: str, media: Path, request: pytest.FixtureRequest) -> None:
    from models.classifiers import build_classifier
    from stages.face_crops import crop_boxes

    classifier = build_classifier(model, "openvino", "CPU", threads=2, batch=-1)
    crops = []
    for image, box in face_crops(media):
        h, w = image.shape[:2]
        x1, y1, x2, y2 = crop_boxes(np.array([box]), classifier.crop_margin, w, h)[0]
        crops.append(image[y1:y2, x1:x2])
    rows = classifier.classify(crops)
    classifier.close()
    got = np.round(rows, 4).tolist()
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    if request.config.getoption("--update-golden"):
        golden[model] = got
        GOLDEN.write_text(json.dumps(golden, indent=0, sort_keys=True) + "\n")
        return
    want = np.asarray(golden[model])
    assert want.shape == rows.shape
    np.testing.assert_allclose(rows, want, atol=0.02 * max(1.0, float(np.abs(want).max()) / 10))
    if want.shape[1] > 1 and model.startswith("emotions"):
        assert (rows.argmax(axis=1) == want.argmax(axis=1)).all()
