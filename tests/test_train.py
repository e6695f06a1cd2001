"""`vigil train classifier`: label handling, splits, class balance, the exported model and its
`vigil.json`, and a short real training run whose exports agree across OpenVINO and TensorFlow.

The short runs use a few hundred images of ../shared/datasets (FER+, UTKFace) for one epoch: they
prove the loop end to end (crop with YuNet, fit, export, load through the stages), not accuracy.
Full training is a documented command (README, "Training"); its numbers are in the model cards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.training.data import (
    FER2013_CLASSES,
    CropRule,
    cut,
    ferplus_targets,
    load_class_folder,
    load_csv,
    pixel_groups,
    split_groups,
)
from models.training.export import read_sidecar, sidecar_path
from models.training.fit import age_weights, balanced_recall, choose_tau, class_weights, heads_of
from pipeline.errors import ConfigError
from stages.classify_age_gender import vigil_age_gender
from stages.classify_keras import KerasOptions, with_sidecar

REPO = Path(__file__).resolve().parents[1]
DATASETS = (REPO / ".." / "shared" / "datasets").resolve()
NO_DATASETS = "needs ../shared/datasets beside the repo"

# FER+ columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
VOTES = np.array(
    [
        [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],  # all happy
        [6, 0, 0, 4, 0, 0, 0, 0, 0, 0],  # neutral 6, sad 4
        [0, 0, 0, 0, 1, 0, 0, 1, 8, 0],  # mostly unknown: dropped
        [4, 0, 4, 0, 0, 0, 0, 0, 0, 2],  # a tie: soft keeps it, majority drops it
    ],
    np.uint8,
)


def test_ferplus_votes_become_fer2013_soft_targets_and_unusable_rows_are_dropped():
    targets, kept = ferplus_targets(VOTES, "soft")
    assert kept.tolist() == [True, True, False, True]
    happy, neutral, sad, surprise = (
        FER2013_CLASSES.index(c) for c in ("happy", "neutral", "sad", "surprise")
    )
    assert targets[0, happy] == 1.0
    assert targets[1, neutral] == pytest.approx(0.6) and targets[1, sad] == pytest.approx(0.4)
    assert targets[3, neutral] == pytest.approx(0.5) and targets[3, surprise] == pytest.approx(0.5)
    assert np.allclose(targets[kept].sum(axis=1), 1.0)


def test_ferplus_majority_rule_needs_more_than_half_of_the_votes():
    targets, kept = ferplus_targets(VOTES, "majority")
    assert kept.tolist() == [True, True, False, False]
    assert targets[1].argmax() == FER2013_CLASSES.index("neutral") and targets[1].max() == 1.0
    with pytest.raises(ConfigError, match="soft or majority"):
        ferplus_targets(VOTES, "plurality")


def test_exact_copies_stay_on_one_side_of_the_validation_split():
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 255, (50, 8, 8, 1), np.uint8)
    crops[10:20] = crops[0]  # eleven copies of one image
    groups = pixel_groups(crops)
    assert len(set(groups[[0, *range(10, 20)]])) == 1 and len(set(groups)) == 40
    train, val = split_groups(groups, 0.2, seed=3)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 50
    copies = {0, *range(10, 20)}
    assert copies <= set(train.tolist()) or copies <= set(val.tolist())
    assert split_groups(groups, 0.2, seed=3)[1].tolist() == val.tolist()  # seeded


def test_class_weights_and_logit_adjustment_favour_rare_classes():
    targets = np.eye(3, dtype=np.float32)[[0] * 90 + [1] * 9 + [2] * 1]
    w = class_weights(targets)
    assert w[0] < 1 < w[1] < w[2] and w[2] == 10.0  # capped
    # a model that leans to the frequent class: logit adjustment recovers the rare ones
    truth = np.array([0] * 10 + [1] * 10)
    probs = np.where(truth[:, None] == 0, [0.9, 0.1], [0.6, 0.4])
    assert balanced_recall(truth, probs.argmax(axis=1), 2) == 0.5
    tau = choose_tau(probs, truth, prior=np.array([0.9, 0.1]))
    adjusted = np.log(probs) - tau * np.log([0.9, 0.1])
    assert tau > 0 and balanced_recall(truth, adjusted.argmax(axis=1), 2) == 1.0


def test_age_weights_make_each_decade_count_about_alike():
    ages = np.array([25] * 80 + [35] * 16 + [75] * 4, np.float32)
    w = age_weights(ages, np.arange(100))
    assert w[:80].sum() == pytest.approx(w[80:96].sum())  # the 20s and the 30s weigh alike in total
    assert w[96:].sum() < w[80:96].sum()  # the 70s reach the cap (4x the uniform share): less in total
    assert w[96] / w[0] == pytest.approx(4.0 / (100 / (3 * 80)))  # capped weight over the 20s' weight
    assert w.mean() == pytest.approx(1.0)


def test_crops_are_cut_like_the_classify_stages_cut_them():
    image = np.zeros((100, 200, 3), np.uint8)
    image[20:60, 80:120] = 255  # the "face"
    crop = cut(image, np.array([80, 20, 120, 60], np.float32), CropRule(margin=0.0, size=(10, 10)))
    assert crop.shape == (10, 10, 1) and crop.min() == 255  # grey, only the box
    wide = cut(
        image, np.array([80, 20, 120, 60], np.float32), CropRule(margin=0.5, size=(20, 20), colour="bgr")
    )
    assert wide.shape == (20, 20, 3) and wide[0, 0].max() == 0 and wide[10, 10].min() == 255
    whole = cut(image, None, CropRule(size=(20, 10), colour="rgb"))
    assert whole.shape == (10, 20, 3)


def test_csv_labels_name_the_bad_line(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "labels.csv").write_text("file,gender,age\na.png,female,30\na.png,robot,40\n")
    with pytest.raises(ConfigError, match=r"line 3: gender must be female or male"):
        load_csv(tmp_path / "labels.csv")
    (tmp_path / "labels.csv").write_text("file,label\na.png,cat\na.png,dog\n")
    samples = load_csv(tmp_path / "labels.csv")
    assert samples.classes == ("cat", "dog") and samples.targets.argmax(axis=1).tolist() == [0, 1]
    with pytest.raises(ConfigError, match="needs gender labels"):
        heads_of("gender", samples)


def test_a_folder_per_class_is_the_course_layout(tmp_path):
    for name, value in (("smile", 200), ("no_smile", 50)):
        (tmp_path / name).mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), np.full((10, 10, 3), value + i, np.uint8))
    (tmp_path / "smile" / "notes.txt").write_text("not an image")
    samples = load_class_folder(tmp_path)
    assert samples.classes == ("no_smile", "smile") and len(samples) == 6
    assert samples.targets.argmax(axis=1).tolist() == [0, 0, 0, 1, 1, 1]
    assert samples.images[3][0, 0, 0] == 200 and samples.names[0] == "no_smile/0.png"
    (tmp_path / "smile" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="cannot read image"):
        load_class_folder(tmp_path)


def test_sidecar_fills_only_the_options_the_pipeline_left_unset(tmp_path):
    model = tmp_path / "m.xml"
    model.write_text("<net/>")
    sidecar_path(model).write_text(
        json.dumps(
            {
                "format": "vigil-classifier/1",
                "labels": ["a", "b"],
                "input": {
                    "size": [48, 48],
                    "colour": "gray",
                    "scale": 1 / 255,
                    "crop_margin": 0.1,
                    "crop_square": True,
                },
            }
        )
    )
    assert read_sidecar(tmp_path / "m.keras") == read_sidecar(model)  # one sidecar per name stem
    options = with_sidecar(KerasOptions(model=str(model), margin=0.3), read_sidecar(model))
    assert options.input_size == (48, 48) and options.colour == "gray" and options.labels == ["a", "b"]
    assert options.margin == 0.3 and options.square is True  # set in the pipeline: kept
    assert with_sidecar(KerasOptions(model=str(model)), None).colour == "auto"


def test_age_gender_outputs_are_told_apart_by_width():
    age, probs = vigil_age_gender({"output_1": np.array([[0.2, 0.8]]), "output_0": np.array([[130.0]])})
    assert age.tolist() == [100.0] and probs.tolist() == [[0.2, 0.8]]


def _vigil(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from pipeline.cli import entry; entry(sys.argv[1:])", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_missing_training_data_is_a_usage_error(tmp_path):
    result = _vigil(
        "train", "classifier", "--task", "emotion", "--data", "nowhere", "--output", str(tmp_path)
    )
    assert result.returncode == 2 and "data nowhere not found" in result.stderr


def _stage(kind: str, **options):
    from pipeline.stage import StageContext, get_kind

    cls = get_kind(kind)
    stage = cls(cls.Options(**options), StageContext(stage_id=kind, threads=1))
    stage.setup()
    return stage


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.tensorflow
@pytest.mark.skipif(not DATASETS.is_dir(), reason=NO_DATASETS)
def test_a_short_emotion_training_exports_models_that_agree_on_openvino_and_tensorflow(tmp_path, media):
    pytest.importorskip("keras")
    out = tmp_path / "out"
    result = _vigil(
        "train", "classifier", "--task", "emotion", "--data", str(DATASETS / "ferplus_train"),
        "--limit", "300", "--epochs", "1", "--output", str(out), "--name", "emo",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mean per-class recall" in result.stdout and "happy" in result.stdout
    assert {p.name for p in out.iterdir()} >= {
        "emo.keras",
        "emo.xml",
        "emo.bin",
        "emo.tflite",
        "emo.vigil.json",
    }
    card = read_sidecar(out / "emo.xml")
    assert card is not None and card["labels"] == list(FER2013_CLASSES) and card["input"]["size"] == [48, 48]
    summary = json.loads((out / "emo.summary.json").read_text())
    assert summary["images"] == 300 and summary["validation"]["class"]["per_class"]["happy"]["support"] > 0

    from pipeline.frame import Frame

    faces = _stage("detect.face", model="yunet")
    frames = [
        faces.process(Frame("img", i, 0.0, 0.0, cv2.imread(str(media / p))))
        for i, p in enumerate(["astronaut.png", "images/face_woman_neutral_pexels_f0000.jpg"])
    ]
    readings = {}
    for backend, model in (("openvino", "emo.xml"), ("tensorflow", "emo.keras")):
        stage = _stage("classify.keras", model=str(out / model), backend=backend, attribute="emotion")
        assert stage.size == (48, 48) and stage.colour == "gray" and stage.square  # from the sidecar
        readings[backend] = [stage.process(f).detections.attributes["emotion_probs"][0] for f in frames]
    for ov_probs, tf_probs in zip(readings["openvino"], readings["tensorflow"], strict=True):
        assert max(ov_probs, key=ov_probs.get) == max(tf_probs, key=tf_probs.get)
        assert np.allclose(list(ov_probs.values()), list(tf_probs.values()), atol=0.02)  # FP16 IR vs FP32


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.tensorflow
@pytest.mark.skipif(not DATASETS.is_dir(), reason=NO_DATASETS)
def test_a_short_age_gender_training_gives_ages_and_gender_probabilities(tmp_path, media):
    pytest.importorskip("keras")
    import openvino as ov

    out = tmp_path / "out"
    result = _vigil(
        "train", "classifier", "--task", "age_gender", "--data", str(DATASETS / "utkface_train"),
        "--limit", "200", "--epochs", "1", "--formats", "openvino", "--output", str(out), "--name", "ag",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "age MAE (validation)" in result.stdout and "gender: accuracy" in result.stdout
    compiled = ov.Core().compile_model(str(out / "ag.xml"), "CPU")
    crops = np.random.default_rng(0).uniform(0, 1, (3, 64, 64, 3)).astype(np.float32)
    outputs = compiled(crops)
    age, probs = vigil_age_gender({o.get_any_name(): np.asarray(v) for o, v in outputs.items()})
    assert age.shape == (3,) and np.all((age >= 0) & (age <= 100))
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)
