"""Image filters: stages that replace `frame.image` with a transformed picture.

`filter.sketch` is the course's "live sketch": grayscale -> Gaussian blur -> Canny edges ->
inverted binary threshold, so edges come out as dark pencil lines on white paper.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

from pipeline.frame import Frame
from pipeline.stage import Options, Stage, register


def sketch(
    image: np.ndarray, blur_kernel: int = 5, canny_low: int = 10, canny_high: int = 70, invert: bool = True
) -> np.ndarray:
    """A new H x W x 3 uint8 BGR edge drawing of `image` (which is only read, never written).

    blur_kernel: Gaussian kernel side in px (odd; 0 or 1 = no blur); canny_low/high: hysteresis
    thresholds on the gradient magnitude of the 0-255 grayscale image; invert: dark edges on white.
    """
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if blur_kernel > 1:
        gray = cv2.GaussianBlur(gray, (blur_kernel, blur_kernel), 0)
    edges = cv2.Canny(gray, canny_low, canny_high)
    mode = cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY
    _, mask = cv2.threshold(edges, 127, 255, mode)
    return cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR)


class SketchOptions(Options):
    """Options of `filter.sketch`."""

    blur_kernel: int = Field(
        5,
        ge=0,
        le=255,
        description="Gaussian blur kernel side in px, odd (0 or 1 = no blur; at most 255); larger = fewer, smoother edges",
    )
    canny_low: int = Field(
        10, ge=0, le=1000, description="Canny lower hysteresis threshold (gray-level gradient)"
    )
    canny_high: int = Field(
        70, ge=0, le=1000, description="Canny upper hysteresis threshold (gray-level gradient)"
    )
    invert: bool = Field(
        True, description="true: dark edges on white (a sketch); false: white edges on black"
    )

    @field_validator("blur_kernel")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value > 1 and value % 2 == 0:
            raise ValueError("must be odd (or 0/1 for no blur)")
        return value

    @model_validator(mode="after")
    def _low_below_high(self) -> SketchOptions:
        if self.canny_low > self.canny_high:
            raise ValueError(f"canny_low ({self.canny_low}) must not exceed canny_high ({self.canny_high})")
        return self


@register("filter.sketch")
class Sketch(Stage[SketchOptions]):
    """Replace the image with a pencil-sketch edge drawing (3-channel BGR, same size).

    Detections and events are kept. Put it before `render` so boxes are drawn on the sketch.
    """

    def process(self, frame: Frame) -> Frame:
        o = self.options
        return frame.replace(image=sketch(frame.image, o.blur_kernel, o.canny_low, o.canny_high, o.invert))
