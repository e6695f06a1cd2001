"""Image -> input tensor, driven by a catalog `InputSpec`; and the way back to image pixels.

`prepare_image` resizes (stretch or letterbox), converts colour, normalises
(`(pixel - mean) / std`), casts and lays out one BGR frame; `InputTransform` maps boxes and
points from model-input pixels (or 0..1 coordinates) back to the original frame.
`prepare_crops` does the same for a batch of classifier crops (always stretched).
`pack_image` only fits the frame (resize / letterbox) and hands over uint8 BGR pixels, for a
runtime that does the rest inside the model (`Backend.image_input`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from models.catalog import InputSpec
from models.geometry import clip_boxes, letterbox

_COLOUR_CODES = {"RGB": cv2.COLOR_BGR2RGB, "GRAY": cv2.COLOR_BGR2GRAY}


@dataclass(frozen=True)
class InputTransform:
    """`input = image * scale + pad` per axis; knows both sizes as (width, height)."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    input_size: tuple[int, int]
    image_size: tuple[int, int]

    def boxes_to_image(self, xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """Input-pixel boxes (N, 4) -> image pixels, clipped to the image by default."""
        b = np.asarray(xyxy, np.float32).reshape(-1, 4)
        scale = np.array([self.scale_x, self.scale_y] * 2, np.float32)
        pad = np.array([self.pad_x, self.pad_y] * 2, np.float32)
        out = (b - pad) / scale
        return clip_boxes(out, *self.image_size) if clip else out.astype(np.float32)

    def points_to_image(self, points: np.ndarray) -> np.ndarray:
        """Input-pixel points (..., 2) -> image pixels (not clipped)."""
        p = np.asarray(points, np.float32)
        return (
            (p - np.array([self.pad_x, self.pad_y], np.float32))
            / np.array([self.scale_x, self.scale_y], np.float32)
        ).astype(np.float32)

    def normalised_boxes_to_image(self, xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """Boxes in 0..1 of the model input -> image pixels."""
        w, h = self.input_size
        return self.boxes_to_image(
            np.asarray(xyxy, np.float32).reshape(-1, 4) * np.array([w, h, w, h], np.float32), clip
        )

    def normalised_points_to_image(self, points: np.ndarray) -> np.ndarray:
        return self.points_to_image(np.asarray(points, np.float32) * np.array(self.input_size, np.float32))


def _to_tensor(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """HxWx3 BGR uint8 (already sized) -> 1xCxHxW / 1xHxWxC in the spec's colour, scale and dtype."""
    if spec.colour in _COLOUR_CODES:
        pixels = cv2.cvtColor(pixels, _COLOUR_CODES[spec.colour])
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if spec.dtype == "uint8" and spec.mean == 0.0 and spec.std == 1.0:
        tensor = np.ascontiguousarray(pixels, dtype=np.uint8)
    else:
        tensor = pixels.astype(np.float32)
        if spec.mean or spec.std != 1.0:
            tensor = (tensor - np.float32(spec.mean)) / np.float32(spec.std)
        tensor = tensor.astype(spec.dtype)
    tensor = tensor[None]
    return np.ascontiguousarray(tensor.transpose(0, 3, 1, 2)) if spec.layout == "NCHW" else tensor


def fit_image(
    image_bgr: np.ndarray, spec: InputSpec, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, InputTransform]:
    """One BGR frame resized (stretch or letterbox) to the input size: (H x W x 3 uint8 BGR, its
    `InputTransform`). `size` (width, height) overrides `spec.size`; with neither the frame
    keeps its size (and is returned as is)."""
    h, w = image_bgr.shape[:2]
    width, height = size or spec.size or (w, h)
    target = (int(width), int(height))  # callers may pass a list
    if spec.resize == "stretch":
        pixels = (
            image_bgr if (w, h) == target else cv2.resize(image_bgr, target, interpolation=cv2.INTER_LINEAR)
        )
        transform = InputTransform(target[0] / w, target[1] / h, 0.0, 0.0, target, (w, h))
    else:
        pixels, box = letterbox(
            image_bgr,
            target,
            pad_value=spec.pad_value,
            center=spec.resize == "letterbox_center",
            max_scale=spec.max_scale,
        )
        transform = InputTransform(box.scale, box.scale, box.pad_x, box.pad_y, target, (w, h))
    return pixels, transform


def prepare_image(
    image_bgr: np.ndarray, spec: InputSpec, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, InputTransform]:
    """One BGR frame -> (input tensor with batch 1, its `InputTransform`).

    `size` (width, height) overrides `spec.size`; with neither the frame keeps its size.
    """
    pixels, transform = fit_image(image_bgr, spec, size)
    return _to_tensor(pixels, spec), transform


def pack_image(
    image_bgr: np.ndarray, spec: InputSpec, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, InputTransform]:
    """One BGR frame -> (1 x H x W x 3 uint8 BGR, its `InputTransform`): fitted to the input size,
    everything else (layout, colour, type, mean/std) left to the runtime (`ImageInput`)."""
    pixels, transform = fit_image(image_bgr, spec, size)
    return np.ascontiguousarray(pixels)[None], transform


def prepare_crops(
    crops: Sequence[np.ndarray], spec: InputSpec, size: tuple[int, int] | None = None, *, packed: bool = False
) -> np.ndarray:
    """BGR crops -> one batch tensor (N, ...), each crop stretched to the input size.

    `packed`: N x H x W x 3 uint8 BGR only, for a runtime that converts them itself (`ImageInput`)."""
    size = size or spec.size
    if size is None:
        raise ValueError("classifier crops need an input size (catalog input.size)")
    target = (int(size[0]), int(size[1]))
    fitted = [
        cv2.resize(c, target, interpolation=cv2.INTER_LINEAR) if c.shape[1::-1] != target else c
        for c in crops
    ]
    if packed:
        return np.stack(fitted) if fitted else np.zeros((0, target[1], target[0], 3), np.uint8)
    parts = [_to_tensor(c, spec) for c in fitted]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)
