"""`vigil eval attributes`: the metrics on hand-made data, then the real pipeline on labelled faces."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.evaluation.attribute_run import image_config, run_attributes
from pipeline.evaluation.attributes import (
    MISSED,
    FaceLabel,
    FacePrediction,
    age_error,
    pick_face,
    read_labels,
    score_attributes,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "deep_surveillance_dnn.yaml"


def test_read_labels_takes_any_of_the_columns(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text(
        "file,gender,age,age_min,age_max,label\n"
        "images/a.jpg,Female,31,,,\n"
        "b.jpg,male,,70,,\n"
        "images/c.jpg,,,,,Happy\n"
    )
    a, b, c = read_labels(path)
    assert a == FaceLabel("a.jpg", gender="female", age=31.0)
    assert b == FaceLabel("b.jpg", gender="male", age_min=70.0)  # 70+: open-ended
    assert c == FaceLabel("c.jpg", emotion="happy")
    (tmp_path / "bad.csv").write_text("name,gender\nx.jpg,male\n")
    with pytest.raises(ValueError, match="'file' column"):
        read_labels(tmp_path / "bad.csv")


def test_pick_face_nearest_the_centre_or_the_largest():
    boxes = np.array([[0, 0, 60, 60], [40, 40, 60, 60], [80, 80, 100, 100]], np.float32)
    assert pick_face(boxes, 100, 100) == 1  # centre (50, 50)
    assert pick_face(boxes, 100, 100, "largest") == 0
    assert pick_face(np.zeros((0, 4)), 100, 100) is None
    with pytest.raises(ValueError):
        pick_face(boxes, 100, 100, "nearest")


@pytest.mark.parametrize(
    ("label", "predicted", "expected"),
    [
        (FaceLabel("x", age=30), 41.5, 11.5),
        (FaceLabel("x", age_min=20, age_max=29), 29.9, 0.0),  # inside [20, 30)
        (FaceLabel("x", age_min=20, age_max=29), 35, 5.0),
        (FaceLabel("x", age_min=20, age_max=29), 12, 8.0),
        (FaceLabel("x", age_min=70), 95, 0.0),  # 70+
        (FaceLabel("x", age_min=70), 60, 10.0),
        (FaceLabel("x"), 60, None),
    ],
)
def test_age_error_against_an_age_or_a_bracket(label, predicted, expected):
    assert age_error(label, predicted) == expected


def test_scores_have_the_known_answers():
    labels = [
        FaceLabel("1", gender="female", age=20, emotion="happy"),
        FaceLabel("2", gender="male", age=40, emotion="disgust"),
        FaceLabel("3", gender="male", age_min=30, age_max=39, emotion="sad"),
        FaceLabel("4", gender="female", age=50, emotion="happy"),  # no face found
    ]
    preds = {
        "1": FacePrediction("1", True, "female", 26.0, "happy"),
        "2": FacePrediction("2", True, "female", 38.0, "angry"),
        "3": FacePrediction("3", True, "male", 45.0, "sad"),
        "4": FacePrediction("4", False),
    }
    classes = ("angry", "happy", "neutral", "sad", "surprise")  # a 5-class model: no disgust
    r = score_attributes(labels, preds, classes, {"attrs": 0.006}, faces_classified=3)
    assert (r.images, r.missed, r.gender_n) == (4, 1, 4)
    assert r.gender_accuracy == pytest.approx(2 / 4)  # the missed face counts as wrong
    assert r.age_mae == pytest.approx((6 + 2) / 2) and r.age_outside == pytest.approx(5.0)
    assert r.age_in_bracket == 0.0 and r.age_n == 3
    assert r.emotion_accuracy == pytest.approx(2 / 4)
    assert r.emotion_accuracy_known == pytest.approx(2 / 3) and r.emotion_n_known == 3
    assert r.confusion == {"happy": {"happy": 1, MISSED: 1}, "disgust": {"angry": 1}, "sad": {"sad": 1}}
    assert r.ms_per_face == {"attrs": pytest.approx(2.0)}
    assert json.loads(json.dumps(r.to_dict()))["confusion"]["happy"][MISSED] == 1
    assert "gender accuracy 0.500" in r.format()


def test_image_config_keeps_the_per_image_stages(tmp_path):
    config = image_config(load_config(DEFAULT_CONFIG), tmp_path)
    assert [s.kind for s in config.stages] == ["detect.face", "classify.emotion", "classify.age_gender"]
    assert [config.parent_of(i) for i in range(3)] == [None, "faces", "emotion"]  # past the tracker
    assert [str(s.uri) for s in config.sources] == [str(tmp_path)] and config.links.policy == "lossless"


# ========================================================= real models, labelled faces

EVAL = REPO / ".." / "shared" / "media" / "eval"


def _subset(tmp_path: Path, name: str, count: int) -> tuple[Path, Path]:
    """The first `count` labelled images of an eval set, linked into a folder of their own."""
    folder = (EVAL / name).resolve()
    with open(folder / "ground_truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:count]
    images = tmp_path / "images"
    images.mkdir()
    for row in rows:
        (images / Path(row["file"]).name).symlink_to(folder / row["file"])
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return images, labels


@pytest.mark.model
def test_the_cli_scores_a_fairface_subset(tmp_path, capsys):
    images, labels = _subset(tmp_path, "faces_fairface", 24)
    out = tmp_path / "report.json"
    code = main(
        ["eval", "attributes", "--images", str(images), "--labels", str(labels), "--config",
         str(DEFAULT_CONFIG), "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["images"] == 24 and report["missed"] == 0 and report["gender_n"] == 24
    assert report["gender_accuracy"] >= 0.6 and report["age_outside"] < 12  # measured 0.667, 9.1
    assert set(report["ms_per_face"]) == {"emotion", "age_gender"}
    assert "gender accuracy" in capsys.readouterr().out


def test_a_missing_labels_file_is_a_one_line_usage_error(tmp_path, capsys):
    args = ["eval", "attributes", "--images", str(tmp_path), "--labels", str(tmp_path / "nope.csv")]
    assert main([*args, "--config", str(DEFAULT_CONFIG)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: eval attributes:") and "nope.csv" in err and "Traceback" not in err


@pytest.mark.model
def test_fer_faces_are_found_after_upscaling(tmp_path):
    images, labels = _subset(tmp_path, "emotions_fer2013", 14)
    small = run_attributes(DEFAULT_CONFIG, images, labels)
    big = run_attributes(
        DEFAULT_CONFIG, images, labels, ["stages.emotion.with.model=fer2013-mini-xception"], upscale=4
    )
    assert small.missed >= 3 and big.missed <= 1  # 48 px faces: 4 of 14 missed; x4: none
    assert big.emotion_classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _set(name: str) -> tuple[Path, Path]:
    folder = (EVAL / name).resolve()
    return folder / "images", folder / "ground_truth.csv"


@pytest.mark.model
@pytest.mark.slow
def test_full_dev_sets_give_the_readme_numbers():
    """The README's Face attributes rows for the shipped default, within noise (±0.03)."""
    ff = run_attributes(DEFAULT_CONFIG, *_set("faces_fairface"))
    utk = run_attributes(DEFAULT_CONFIG, *_set("faces_utkface"))
    assert (ff.missed, utk.missed) == (0, 0)
    assert ff.gender_accuracy == pytest.approx(0.792, abs=0.03) and ff.age_outside == pytest.approx(
        9.6, abs=1
    )
    assert utk.gender_accuracy == pytest.approx(0.938, abs=0.03) and utk.age_mae == pytest.approx(12.3, abs=1)
    ensemble = run_attributes(
        DEFAULT_CONFIG, *_set("faces_fairface"), ["stages.age_gender.with.model=intel+faceapi"]
    )
    assert ensemble.gender_accuracy >= ff.gender_accuracy + 0.03 and ensemble.age_outside < ff.age_outside / 2
    fer = run_attributes(
        DEFAULT_CONFIG,
        *_set("emotions_fer2013"),
        ["stages.emotion.with.model=fer2013-mini-xception"],
        upscale=4,
    )
    assert fer.missed <= 3 and fer.emotion_accuracy == pytest.approx(0.614, abs=0.03)


def test_labelled_files_missing_from_the_folder_are_a_usage_error_that_points_to_them(tmp_path, capsys):
    images, labels = _subset(tmp_path, "emotions_fer2013", 3)
    config = ["--config", str(DEFAULT_CONFIG)]
    # the set's parent folder given instead of its images/ subfolder: say where the files are
    assert main(["eval", "attributes", "--images", str(tmp_path), "--labels", str(labels), *config]) == 2
    err = capsys.readouterr().err
    assert "3 of the 3 labelled files are not there" in err and f"they are in {images}" in err
    # one file gone: the eval refuses to score a different set than the labels describe
    gone = sorted(images.iterdir())[0]
    gone.unlink()
    assert main(["eval", "attributes", "--images", str(images), "--labels", str(labels), *config]) == 2
    err = capsys.readouterr().err
    assert "1 of the 3 labelled files are not there" in err and gone.name in err and "Traceback" not in err
