"""detect.hog (OpenCV's HOG people detector) on the real fixed-camera video: no model file needed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.frame import Frame
from pipeline.stage import StageContext, get_kind

VIDEO = "videos/people_one_by_one_part1_intel.mp4"


def _frames(media, wanted: list[int]) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(media / VIDEO))
    out, i = {}, 0
    while i <= max(wanted):
        ok, image = cap.read()
        assert ok
        if i in wanted:
            out[i] = image
        i += 1
    cap.release()
    return out


def _stage(**options):
    cls = get_kind("detect.hog")
    stage = cls(cls.Options(**options), StageContext(stage_id="hog"))
    stage.setup()
    return stage


@pytest.mark.slow
def test_hog_finds_the_person_at_the_table_and_nothing_in_the_empty_room(media):
    visits, empty = [150, 300, 580], [10, 215, 480]
    frames = _frames(media, visits + empty)
    stage = _stage()
    for i in visits:
        det = stage.process(Frame("cam", i, 0.0, 0.0, frames[i])).detections
        assert len(det) >= 1 and set(det.label) == {"person"}, i
        assert 0.3 <= det.score.min() <= det.score.max() < 1
    for i in empty:
        assert len(stage.process(Frame("cam", i, 0.0, 0.0, frames[i])).detections) == 0, i
    assert stage.context.report["inferred"] == 6


def test_gated_hog_skips_still_frames_and_is_stateful_only_when_gated():
    cls = get_kind("detect.hog")
    assert cls.is_stateful(cls.Options(gate={})) and not cls.is_stateful(cls.Options())
    stage = _stage(gate={"max_interval": 100})
    img = np.full((128, 64, 3), 90, np.uint8)
    still = np.zeros((0, 4), np.float32)
    out = [stage.process(Frame("cam", s, 0.0, 0.0, img, motion=still)) for s in range(4)]
    assert [f.predicted for f in out] == [False, True, True, True]
    assert stage.context.report["inferred"] == 1 and stage.context.report["skipped"] == 3
