"""Detections and Frame: the one currency between stages."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.frame import Detections, Event, Frame


def test_create_fills_neutral_defaults_and_validates_lengths():
    d = Detections.create([[0, 0, 10, 20]])
    assert d.score.tolist() == [1.0] and d.class_id.tolist() == [0] and d.track_id.tolist() == [-1]
    assert d.area.tolist() == [200.0]
    with pytest.raises(ValueError, match="score"):
        Detections(
            np.zeros((2, 4), np.float32),
            np.zeros(1, np.float32),
            np.zeros(2, np.int32),
            np.array(["a", "b"], object),
            np.zeros(2, np.int64),
        )


def test_concat_with_empty_detections_keeps_numeric_attributes():
    # regression: a detector appending to a frame's empty detections turned landmarks into objects
    found = Detections.create([[1, 2, 3, 4]], attributes={"landmarks": np.ones((1, 5, 2), np.float32)})
    merged = Detections.concat([Detections.empty(), found])
    assert merged.attributes["landmarks"].shape == (1, 5, 2)
    assert merged.attributes["landmarks"].dtype == np.float32


def test_concat_fills_missing_attributes_with_none():
    a = Detections.create([[0, 0, 1, 1]], label=["face"], attributes={"age": [30.0]})
    b = Detections.create([[2, 2, 3, 3]], label=["person"])
    merged = Detections.concat([a, b])
    assert list(merged.label) == ["face", "person"]
    assert list(merged.attributes["age"]) == [30.0, None]


def test_concat_skips_none_parts_and_mixes_numeric_with_object_columns():
    a = Detections.create([[0, 0, 1, 1]], attributes={"age": [30.0], "emotion": ["happy"]})
    b = Detections.create([[2, 2, 3, 3]], attributes={"emotion": ["sad"], "age": ["old"]})
    c = Detections.create([[4, 4, 5, 5]], attributes={"age": [40.0]})
    assert Detections.concat([None, a, None]) is a
    assert len(Detections.concat([None])) == 0 and len(Detections.concat([])) == 0
    merged = Detections.concat([a, None, b, c])
    assert list(merged.attributes) == ["age", "emotion"]  # first-seen order
    assert merged.attributes["age"].dtype == object and list(merged.attributes["age"]) == [30.0, "old", 40.0]
    assert list(merged.attributes["emotion"]) == ["happy", "sad", None]
    numeric = Detections.concat([a, c]).attributes["age"]
    assert numeric.dtype == np.float32 and numeric.tolist() == [30.0, 40.0]


def test_subset_and_records():
    d = Detections.create(
        [[0, 0, 1, 1], [5, 5, 9, 9]], [0.2, 0.9], [1, 2], ["a", "b"], [3, -1], {"emotion": ["happy", "sad"]}
    )
    top = d[d.score > 0.5]
    assert len(top) == 1 and top.to_records() == [
        {
            "box": [5.0, 5.0, 9.0, 9.0],
            "score": 0.9,
            "label": "b",
            "class_id": 2,
            "track_id": None,
            "attributes": {"emotion": "sad"},
        }
    ]
    assert Detections.from_records(d.to_records()).to_records() == d.to_records()


def test_frame_record_is_the_public_jsonl_schema():
    f = Frame(
        "door",
        4,
        0.16,
        0.0,
        np.zeros((4, 4, 3), np.uint8),
        Detections.create([[0, 0, 2, 2]]),
        (Event("zone_enter", "zone", 7, {"zone": "till"}),),
        index=12,
    )
    rec = f.to_record()
    assert list(rec)[:4] == ["source", "seq", "pts", "detections"]
    assert rec["index"] == 12 and rec["events"][0] == {
        "type": "zone_enter",
        "stage": "zone",
        "track_id": 7,
        "zone": "till",
    }
    assert set(rec["detections"][0]) == {"box", "score", "label", "class_id", "track_id", "attributes"}


def test_a_run_imports_only_the_stage_modules_it_uses():
    import subprocess
    import sys

    code = (
        "import sys; from pipeline.config import load_config; load_config('configs/faces_haar.yaml'); "
        "print('scipy' in sys.modules, 'stages.track' in sys.modules, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False", "False"]
