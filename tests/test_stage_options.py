"""`Stage[MyOptions]`: a stage's options model comes from its generic parameter."""

from __future__ import annotations

from typing import TypeVar

import pytest
from pydantic import Field

from pipeline.stage import NoOptions, Options, Stage, StageContext, get_kind


class BlurOptions(Options):
    """Options of a test stage."""

    kernel: int = Field(5, ge=1)


class WideBlurOptions(BlurOptions):
    """A narrower options model of a subclass."""

    kernel: int = Field(31, ge=1)


BlurT = TypeVar("BlurT", bound=BlurOptions)


class Blur(Stage[BlurOptions]):
    """A stage with options."""


class Plain(Stage):
    """A stage without options."""


class _BlurShell(Stage[BlurT]):
    """A shared shell, generic itself, as the detector and tracker families use."""


class WideBlur(_BlurShell[WideBlurOptions]):
    """A concrete stage of the shell."""


class SubBlur(Blur):
    """Inherits its parent's options."""


def test_options_come_from_the_generic_parameter() -> None:
    assert Blur.Options is BlurOptions and SubBlur.Options is BlurOptions
    assert Plain.Options is NoOptions and Stage.Options is NoOptions
    assert _BlurShell.Options is BlurOptions  # a type variable stands for its bound
    assert WideBlur.Options is WideBlurOptions


def test_the_instance_gets_the_options_it_was_given() -> None:
    options = WideBlurOptions(kernel=7)
    stage = WideBlur(options, StageContext(stage_id="blur"))
    assert stage.options is options and stage.id == "blur"


def test_an_options_attribute_is_refused_with_the_way_to_write_it() -> None:
    with pytest.raises(TypeError, match=r"class Old\(Stage\[BlurOptions\]\)"):

        class Old(Stage):
            Options = BlurOptions


def test_builtin_options_are_typed_per_kind() -> None:
    haar = get_kind("detect.haar")
    assert haar.Options.__name__ == "HaarOptions"
    sort, iou = get_kind("track.sort"), get_kind("track.iou")
    assert "smooth_boxes" in sort.Options.model_fields and "smooth_boxes" not in iou.Options.model_fields


@pytest.mark.parametrize("smoothing", [True, False])
def test_is_stateful_reads_the_typed_options(smoothing: bool) -> None:
    emotion = get_kind("classify.emotion")
    assert emotion.is_stateful(emotion.Options.model_validate({"smoothing": smoothing})) is smoothing
