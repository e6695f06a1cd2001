"""filter.sketch: pencil-sketch edges on a real image, input left untouched."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.frame import Detections, Frame
from pipeline.stage import StageContext, get_kind
from stages.filters import Sketch, SketchOptions


def make(**options: object) -> Sketch:
    stage = get_kind("filter.sketch")(SketchOptions(**options), StageContext(stage_id="sketch"))
    assert isinstance(stage, Sketch)
    stage.setup()
    return stage


def test_sketch_is_white_paper_with_dark_edges(media: Path) -> None:
    image = cv2.imread(str(media / "images/face_woman_happy_pexels_f0313.jpg"))
    before = image.copy()
    image.setflags(write=False)
    boxes = Detections.create([[1, 2, 3, 4]])
    out = make().process(Frame(source="cam", seq=0, pts=0.0, wall=0.0, image=image, detections=boxes))
    sk = out.image
    assert sk.shape == image.shape and sk.dtype == np.uint8
    assert sk is not image
    assert np.array_equal(image, before)
    assert set(np.unique(sk)) <= {0, 255}
    assert (sk[..., 0] == sk[..., 2]).all()  # gray drawn in 3 channels
    dark = float((sk == 0).mean())
    assert 0.005 < dark < 0.3  # mostly white, with some edges
    assert out.detections is boxes


def test_invert_false_gives_white_edges_on_black(media: Path) -> None:
    image = cv2.imread(str(media / "images/face_man_happy_intel_f0008.jpg"))
    frame = Frame(source="cam", seq=0, pts=0.0, wall=0.0, image=image)
    pencil = make().process(frame).image
    neon = make(invert=False).process(frame).image
    assert np.array_equal(pencil, 255 - neon)


def test_options_validated() -> None:
    with pytest.raises(ValidationError, match="odd"):
        SketchOptions(blur_kernel=4)
    with pytest.raises(ValidationError, match="canny_low"):
        SketchOptions(canny_low=100, canny_high=50)
    with pytest.raises(ValidationError):
        SketchOptions(blurr=5)
    assert SketchOptions(blur_kernel=0).blur_kernel == 0
