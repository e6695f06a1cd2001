"""Classifier glue: a catalog classifier on a backend, run on a batch of crops.

`build_classifier("fer2013-mini-xception")` gives a `Classifier` whose `classify(crops)`
resizes each BGR crop to the catalog input size, applies the model's colour, scale and
layout, runs the batch (async/batched by the backend) and returns the raw output rows. What
the numbers mean (emotion softmax, age x 100, P(female)...) is the caller's business; the
catalog entry says it (`labels`, `summary`, `input.crop_margin` for how much to crop).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.backends import Backend
from models.catalog import InputSpec
from models.loader import LoadedModel, ModelRunInfo, choose, open_backend
from models.preprocessing import prepare_crops
from pipeline.errors import ModelError


class Classifier:
    """Runs a classifier/regressor on face (or other) crops, batched."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        resolved = loaded.resolved
        self.spec: InputSpec = resolved.format.input
        self.labels: tuple[str, ...] | None = resolved.labels
        self.crop_margin: float = self.spec.crop_margin or 0.0
        self.input_name = loaded.backend.inputs[0].name
        names = [o.name for o in resolved.format.outputs]
        self.output_names = names or [o.name for o in loaded.backend.outputs]

    @property
    def backend(self) -> Backend:
        return self.loaded.backend

    @property
    def info(self) -> ModelRunInfo:
        return self.loaded.info()

    def classify_outputs(self, crops: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Each output as (N, k) rows (trailing 1x1 dims flattened), keyed by catalog output name."""
        for crop in crops:
            if (
                not isinstance(crop, np.ndarray)
                or crop.ndim != 3
                or crop.shape[2] != 3
                or min(crop.shape[:2]) < 1
            ):
                raise ValueError(
                    f"expected non-empty H x W x 3 BGR crops, got {getattr(crop, 'shape', type(crop))}"
                )
        if not crops:
            return {n: np.zeros((0, 0), np.float32) for n in self.output_names}
        packed = self.backend.image_input is not None  # the runtime converts uint8 BGR crops itself
        raw = self.backend.infer({self.input_name: prepare_crops(crops, self.spec, packed=packed)})
        values = list(raw.values())
        out = {}
        for i, name in enumerate(self.output_names):
            value = raw[name] if name in raw else values[i]
            out[name] = np.asarray(value, np.float32).reshape(len(crops), -1)
        return out

    def classify(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Raw output rows (N, K): the outputs in catalog order, concatenated (see `columns`)."""
        outputs = self.classify_outputs(crops)
        return np.concatenate(list(outputs.values()), axis=1) if crops else np.zeros((0, 0), np.float32)

    @property
    def columns(self) -> dict[str, slice]:
        """Which columns of `classify` come from which output (needs one call's shapes)."""
        widths = []
        for name in self.output_names:
            spec = next((o for o in self.backend.outputs if o.name == name), None)
            dims = [d for d in (spec.shape[1:] if spec else ()) if d is not None]
            widths.append(int(np.prod(dims)) if dims else 1)
        bounds = np.cumsum([0, *widths])
        return {
            n: slice(int(a), int(b))
            for n, a, b in zip(self.output_names, bounds[:-1], bounds[1:], strict=True)
        }

    def close(self) -> None:
        self.backend.close()


def build_classifier(
    model: str,
    backend: str = "auto",
    device: str = "AUTO",
    threads: int | None = None,
    *,
    mode: str = "latency",
    precision: str | None = None,
    labels: str | Path | None = None,
    batch: int | None = None,
) -> Classifier:
    """A ready classifier for a catalog name (emotion, age_gender, age, gender models).

    batch: OpenVINO only; -1 reshapes a static batch-1 IR to a dynamic batch so N crops run as
    one inference instead of N async requests.
    """
    choice = choose(model, backend, labels=labels)
    if choice.resolved.format.decoder != "classifier":
        raise ModelError(
            f"model {choice.resolved.name!r} is a {choice.resolved.entry.task} model, not a classifier"
        )
    loaded = open_backend(
        choice, device, threads, mode=mode, precision=precision, batch=batch, images_in=True
    )
    return Classifier(loaded)
