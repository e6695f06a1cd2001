"""`classify.keras`: bring your own Keras classifier (.keras, .h5/.hdf5, SavedModel folder).

The course trains many small image classifiers (smile detector, LittleVGG emotions, fruits,
...). This stage runs one on each wanted detection crop (`target: detections`) or on the whole
frame (`target: frame`, which adds one detection [0, 0, W, H] labelled with the top class), and
writes `<attribute>` (label), `<attribute>_score` (its probability) and `<attribute>_probs`
(label -> probability). Preprocessing is what the model was trained with: input size (default:
the model's input shape), colour order, and value = (pixel × scale − mean) / std.

The model loads through the TensorFlow backend (models.backends), so TensorFlow is imported
when the stage is set up, never when the pipeline is merely validated. A single sigmoid output
(binary model) reads as [1 − p, p] over two labels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

from models.labels import load_labels
from models.loader import ModelRunInfo
from models.training.export import read_sidecar
from pipeline.errors import ConfigError, ModelError
from pipeline.frame import Detections, Frame
from pipeline.stage import register
from stages.attribute_smoothing import Key
from stages.classify import ClassifyOptions, CropClassifierStage
from stages.face_crops import CropBatch, as_bgr

Channels = float | list[float]


def normalise_crops(
    crops: Sequence[np.ndarray],
    size: tuple[int, int],
    colour: str,
    channels: int,
    scale: float = 1 / 255,
    mean: Channels = 0.0,
    std: Channels = 1.0,
) -> np.ndarray:
    """BGR uint8 crops -> float32 (N, h, w, channels): resized to `size` (w, h), put in `colour`
    order (bgr | rgb | gray), then (pixel × scale − mean) / std (mean/std scalar or per channel)."""
    out = np.empty((len(crops), size[1], size[0], channels), np.float32)
    for i, crop in enumerate(crops):
        pixels = cv2.resize(
            crop, size, interpolation=cv2.INTER_AREA if crop.shape[1] > size[0] else cv2.INTER_LINEAR
        )
        if colour == "rgb":
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        elif colour == "gray":
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)[:, :, None]
        out[i] = pixels  # a gray image broadcasts to 3 channels for a 3-channel model
    out *= np.float32(scale)
    out -= np.asarray(mean, np.float32)
    out /= np.asarray(std, np.float32)
    return out


def class_probabilities(raw: np.ndarray) -> np.ndarray:
    """Model output (N, K) -> probabilities (N, K); a single sigmoid column p becomes [1 − p, p]."""
    rows = np.asarray(raw, np.float64).reshape(len(raw), -1)
    if rows.shape[1] == 1:
        p = np.clip(rows[:, 0], 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)
    return rows


class KerasOptions(ClassifyOptions):
    """Options of `classify.keras` (sizes in pixels)."""

    model: str = Field(
        description="path to a Keras model: .keras, .h5/.hdf5, a SavedModel folder, or a `vigil train` "
        "export (.keras, .xml, .tflite: its <name>.vigil.json supplies size, colour, scaling, crop, labels)"
    )
    backend: Literal["auto", "tensorflow", "openvino"] = Field(
        "auto", description="tensorflow (Keras files); openvino also reads SavedModel folders"
    )
    input_size: tuple[Annotated[int, Field(ge=1, le=4096)], Annotated[int, Field(ge=1, le=4096)]] | None = (
        Field(
            None, description="[width, height] the model takes (default: its input shape; each at most 4096)"
        )
    )
    colour: Literal["auto", "bgr", "rgb", "gray"] = Field(
        "auto",
        description="colour order it was trained on; auto: gray for 1-channel models, else rgb (Keras loaders)",
    )
    scale: float = Field(
        1 / 255, description="pixel multiplier applied first (1/255: values 0..1; 1: 0..255)"
    )
    mean: Channels = Field(0.0, description="subtracted after scaling (a number or one per channel)")
    std: Channels = Field(1.0, description="divisor after the mean (a number or one per channel)")
    labels: list[str] | str | None = Field(
        None,
        description="class names in output order: a list or a file with "
        "one name per line (default: the class index)",
    )
    attribute: str = Field(
        "class",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="attribute to write (also <attribute>_score and <attribute>_probs)",
    )
    target: Literal["detections", "frame"] = Field(
        "detections",
        description="detections: classify each crop of target_labels; frame: the whole image, "
        "added as one detection [0, 0, W, H] labelled with the top class",
    )
    target_labels: list[str] | None = Field(
        ["face"], description="with target detections: labels to classify (null: all)"
    )
    margin: float | None = Field(
        0.0, ge=0, le=2, description="fraction of the box added on each side before cropping"
    )

    @field_validator("std")
    @classmethod
    def _nonzero(cls, value: Channels) -> Channels:
        if np.any(np.asarray(value, np.float64) == 0):
            raise ValueError("std must not be 0")
        return value

    @model_validator(mode="after")
    def _every_needs_tracks(self) -> KerasOptions:
        if self.every > 1 and self.target == "frame":
            raise ValueError(
                "every: N repeats a tracked detection's reading; with target: frame set every: 1"
            )
        return self


def with_sidecar(options: KerasOptions, sidecar: dict[str, Any] | None) -> KerasOptions:
    """`options` with what `vigil train` recorded beside the model (`<name>.vigil.json`: input size,
    colour, scaling, crop, labels) filled in wherever the pipeline file left the option unset."""
    if not sidecar:
        return options
    spec = sidecar.get("input", {})
    recorded = {
        "input_size": tuple(spec["size"]) if spec.get("size") else None,
        "colour": spec.get("colour"),
        "scale": spec.get("scale"),
        "mean": spec.get("mean"),
        "std": spec.get("std"),
        "margin": spec.get("crop_margin"),
        "square": spec.get("crop_square"),
        "labels": sidecar.get("labels") or None,
    }
    update = {k: v for k, v in recorded.items() if v is not None and k not in options.model_fields_set}
    return options.model_copy(update=update)


class _KerasModel:
    """A user model on its backend, with what the run summary lists."""

    def __init__(
        self, path: Path, backend: str, device: str, threads: int | None, precision: str | None = None
    ) -> None:
        from models.backends import kind_of, load_backend

        if not path.exists():
            raise ModelError(f"classify.keras: model {path} not found (looked relative to {Path.cwd()})")
        kind = kind_of(path)
        if kind not in ("keras", "savedmodel", "openvino_ir", "tflite"):
            raise ModelError(
                f"classify.keras: {path.name} is a {kind} file, not a Keras model (.keras, .h5, SavedModel) "
                "or one `vigil train` exported (.xml, .tflite)"
            )
        start = time.perf_counter()
        self.backend = load_backend(path, backend, device, threads, kind=kind, batch=-1, precision=precision)
        b = self.backend.info
        self.info = ModelRunInfo(
            path.name,
            "classification",
            kind,
            b.backend,
            b.runtime,
            b.device,
            b.precision,
            b.threads,
            round(time.perf_counter() - start, 3),
            str(path),
        )
        shape = self.backend.inputs[0].shape
        if len(shape) != 4:
            raise ModelError(f"classify.keras: {path.name} takes {list(shape)}, not images (N, H, W, C)")
        self.height, self.width, self.channels = shape[1], shape[2], shape[3] or 3

    def run(self, batch: np.ndarray) -> np.ndarray:
        outputs = self.backend.infer(batch)
        return class_probabilities(
            outputs[self.backend.outputs[0].name] if self.backend.outputs else next(iter(outputs.values()))
        )

    def close(self) -> None:
        self.backend.close()


@register("classify.keras")
class KerasClassifier(CropClassifierStage[KerasOptions]):
    """Your own Keras classifier on detection crops or whole frames: `<attribute>`, `_score`, `_probs`."""

    @property
    def select_labels(self) -> list[str] | None:
        return self.options.target_labels

    def load(self) -> tuple[list[Any], tuple[float, bool]]:
        path = Path(self.options.model).expanduser()
        o = self.options = with_sidecar(self.options, read_sidecar(path))
        model = _KerasModel(path, o.backend, o.device, self.context.threads, o.precision)
        width, height = o.input_size or (model.width, model.height)
        if width is None or height is None:
            raise ConfigError(
                f"classify.keras: {Path(o.model).name} accepts any image size; set input_size: [w, h]"
            )
        self.size = (int(width), int(height))
        self.colour = o.colour if o.colour != "auto" else ("gray" if model.channels == 1 else "rgb")
        if model.channels == 1 and self.colour != "gray":
            raise ConfigError(f"classify.keras: {Path(o.model).name} takes 1 channel; use colour: gray")
        self.names = load_labels(o.labels) if isinstance(o.labels, str) else list(o.labels or [])
        name = o.attribute
        self.columns = (name, f"{name}_score", f"{name}_probs")
        return [model], (float(o.margin or 0.0), bool(o.square))

    def gather(self, frames: Sequence[Frame]) -> CropBatch:
        if self.options.target == "detections":
            return super().gather(frames)
        batch = CropBatch()
        for i, frame in enumerate(frames):
            batch.crops.append(as_bgr(frame.image))
            batch.owners.append((i, -1))
        return batch

    def infer(self, crops: list[np.ndarray]) -> np.ndarray:
        o = self.options
        batch = normalise_crops(
            crops, self.size, self.colour, self.models[0].channels, o.scale, o.mean, o.std
        )
        probs = self.models[0].run(batch)
        if self.names and len(self.names) != probs.shape[1]:
            raise ModelError(f"classify.keras: {len(self.names)} labels for {probs.shape[1]} model outputs")
        return probs

    def label(self, index: int) -> str:
        return self.names[index] if self.names else str(index)

    def attributes(self, raw: np.ndarray, k: int, key: Key | None, now: int) -> dict[str, Any]:
        top, probs = self.top_class(key, "class", raw[k], now)
        a, score, dist = self.columns
        return {
            a: self.label(top),
            score: round(float(probs[top]), 4),
            dist: {self.label(j): round(float(p), 4) for j, p in enumerate(probs)},
        }

    def _annotate(self, frame: Frame, pairs: list[tuple[int, int]], raw: Any) -> Frame:
        if self.options.target == "detections":
            return super()._annotate(frame, pairs, raw)
        ((k, _),) = pairs
        values = self.attributes(raw, k, None, frame.seq)
        h, w = frame.image.shape[:2]
        a, score, _ = self.columns
        whole = Detections.create(
            [[0, 0, w, h]],
            [values[score]],
            [int(np.argmax(raw[k]))],
            [values[a]],
            attributes={c: [v] for c, v in values.items()},
        )
        return frame.with_detections(Detections.concat([frame.detections, whole]))
