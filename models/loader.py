"""From a model name and a backend request to a loaded runtime, with the choice explained.

`choose(model, backend)` resolves the files: for `backend: auto` the backends are ranked for
this machine (models.backends.selection) and the first one whose format is present wins, so a
machine holding only the TFLite file still runs. `open_backend(choice, ...)` loads it with the
catalog's tensor names and input shape. Both log one line saying what was picked and why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.backends import Backend, ImageInput, load_backend
from models.backends.selection import rank_backends
from models.catalog import BACKENDS, Catalog, Decoder, InputSpec, ModelEntry, ModelFormat, load_catalog
from models.resolver import ResolvedModel, looks_like_path, resolve, resolve_user_file
from pipeline.errors import ModelError

log = logging.getLogger("vigil.models")


@dataclass(frozen=True)
class Choice:
    """A resolved model, the backend that will run it and why."""

    resolved: ResolvedModel
    backend: str
    reason: str


@dataclass(frozen=True)
class ModelRunInfo:
    """What runs a model, for the run log and summary (`as_dict()` is JSON-ready)."""

    model: str
    task: str
    format: str
    backend: str
    runtime: str
    device: str
    precision: str
    threads: int | None
    load_seconds: float
    path: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LoadedModel:
    """A resolved model running on a backend; `load_seconds` covers read + compile."""

    choice: Choice
    backend: Backend
    load_seconds: float

    @property
    def resolved(self) -> ResolvedModel:
        return self.choice.resolved

    def info(self) -> ModelRunInfo:
        r, b = self.choice.resolved, self.backend.info
        return ModelRunInfo(
            r.name,
            r.entry.task,
            r.format.id,
            b.backend,
            b.runtime,
            b.device,
            b.precision,
            b.threads,
            round(self.load_seconds, 3),
            str(r.path),
        )


def choose(
    model: str,
    backend: str = "auto",
    *,
    labels: str | Path | None = None,
    catalog: Catalog | None = None,
    user_decoder: Decoder = "yolo",
    user_input: InputSpec | None = None,
) -> Choice:
    """Resolve `model` for `backend` (openvino | tensorflow | opencv | auto)."""
    backend = (backend or "auto").lower()
    if backend != "auto" and backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r} (use {', '.join(BACKENDS)} or auto)")
    catalog = catalog or load_catalog()
    entry = catalog.find(model)
    if entry is None and looks_like_path(model):
        return _logged(_choose_user_file(model, backend, labels, user_decoder, user_input))
    if entry is None:
        entry = catalog.get(model)  # raises the "unknown model" error
    if backend != "auto":
        resolved = resolve(entry.name, [backend], labels=labels, catalog=catalog)
        return _logged(Choice(resolved, backend, "requested"))
    return _logged(_choose_auto(entry, labels, catalog))


def _choose_user_file(
    model: str, backend: str, labels: str | Path | None, decoder: Decoder, input_spec: InputSpec | None
) -> Choice:
    """A user's file: the requested backend, or for `auto` the best-ranked one that reads it."""
    wanted = None if backend == "auto" else [backend]
    resolved = resolve_user_file(model, wanted, labels=labels, decoder=decoder, input_spec=input_spec)
    ranked = rank_backends(resolved.format.backends, [resolved.format.kind]) if backend == "auto" else []
    if not ranked:
        return Choice(resolved, resolved.backend or resolved.format.backends[0], "requested")
    best, reason = ranked[0]
    resolved = resolve_user_file(model, [best], labels=labels, decoder=decoder, input_spec=input_spec)
    return Choice(resolved, resolved.backend or resolved.format.backends[0], reason)


def _choose_auto(entry: ModelEntry, labels: str | Path | None, catalog: Catalog) -> Choice:
    """A catalog model on the best-ranked backend whose files are present, saying why."""
    kinds = [f.kind for f in entry.formats_for("tensorflow")]
    ranked = rank_backends(entry.backends, kinds)
    if not ranked:
        raise ModelError(
            f"model {entry.name!r} needs {', '.join(entry.backends)}, and none of them is installed"
        )
    best = ranked[0][0]
    resolved = resolve(entry.name, [b for b, _ in ranked], labels=labels, catalog=catalog)
    chosen = resolved.backend or best
    reason = dict(ranked)[chosen]
    if resolved.backend != best:
        reason = f"{best} files are not present; {resolved.backend}: {reason}"
    return Choice(resolved, chosen, reason)


def _logged(choice: Choice) -> Choice:
    r = choice.resolved
    log.info("model %s: %s on %s (%s); %s", r.name, r.format.id, choice.backend, choice.reason, r.path)
    return choice


def input_shape(fmt: ModelFormat) -> list[int] | None:
    """The 4-D input shape implied by the catalog (batch 1), when the size is known."""
    spec = fmt.input
    if spec.size is None:
        return None
    w, h = spec.size
    c = 1 if spec.colour == "GRAY" else 3
    return [1, c, h, w] if spec.layout == "NCHW" else [1, h, w, c]


def image_input(spec: InputSpec) -> ImageInput | None:
    """The in-runtime conversion that turns uint8 BGR images into this input, or None when the
    model wants gray or its size is not fixed (those keep the Python path)."""
    if spec.colour == "GRAY" or spec.size is None:
        return None
    return ImageInput(spec.layout, rgb=spec.colour == "RGB", mean=spec.mean, std=spec.std)


def open_backend(
    choice: Choice,
    device: str = "AUTO",
    threads: int | None = None,
    *,
    mode: str = "latency",
    precision: str | None = None,
    batch: int | None = None,
    images_in: bool = False,
) -> LoadedModel:
    """Load the chosen format on the chosen backend (`batch`: OpenVINO reshape, -1 = dynamic).

    `images_in`: ask the runtime to take uint8 BGR images and do the input conversion itself
    (see `image_input`; `backend.image_input` says whether it did)."""
    fmt = choice.resolved.format
    names: Sequence[str] = [o.name for o in fmt.outputs]
    start = time.perf_counter()
    backend = load_backend(
        choice.resolved.path,
        choice.backend,
        device,
        threads,
        kind=fmt.kind,
        inputs=[fmt.input.name] if fmt.input.name else None,
        outputs=names or None,
        mode=mode,
        batch=batch,
        input_shape=input_shape(fmt),
        precision=precision,
        image_input=image_input(fmt.input) if images_in else None,
    )
    elapsed = time.perf_counter() - start
    info = backend.info
    log.info(
        "model %s: loaded in %.2f s on %s %s (%s)",
        choice.resolved.name,
        elapsed,
        info.backend,
        info.device,
        info.precision,
    )
    return LoadedModel(choice, backend, elapsed)
