"""The inference-backend interface: load a model file, describe its tensors, run it.

Backends are runtime adapters (OpenVINO, TensorFlow/LiteRT, OpenCV DNN). They know nothing
about faces or boxes: tensors in, tensors out, keyed by name. A backend instance is owned by
one stage (one thread at a time); use one backend per worker.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("vigil.models")

Feeds = Mapping[str, np.ndarray] | np.ndarray
Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, shape (None = dynamic dimension) and numpy dtype.

    aliases: other names the runtime knows the tensor by; quantization: (scale, zero_point)
    when the runtime reports one (TFLite uint8 tensors), else None.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    aliases: tuple[str, ...] = ()
    quantization: tuple[float, int] | None = None

    @property
    def batch(self) -> int | None:
        """The static leading dimension, or None when it is dynamic or unknown."""
        return self.shape[0] if self.shape else None


@dataclass(frozen=True)
class BackendInfo:
    """What actually ran a model, for the run log and summary."""

    backend: str  # openvino | tensorflow | opencv
    runtime: str  # e.g. "openvino 2026.4.1", "ai-edge-litert 2.3.0"
    device: str  # the device(s) that execute, as the runtime reports them
    precision: str  # inference precision, e.g. f32, bf16, FP16
    threads: int | None = None  # CPU thread budget given to the runtime (None = its default)
    requests: int = 1  # parallel in-flight requests used by infer_many
    extra: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "runtime": self.runtime,
            "device": self.device,
            "precision": self.precision,
            "threads": self.threads,
            "requests": self.requests,
            **self.extra,
        }


@dataclass(frozen=True)
class ImageInput:
    """Ask a runtime to take the first input as uint8 N x H x W x 3 BGR images and convert them
    itself, inside the compiled model: to `layout` (the model's own, NCHW or NHWC) and float,
    channels reversed when `rgb`, then `(x - mean) / std`. Runtimes that cannot leave
    `Backend.image_input` as None and the caller prepares the tensor itself."""

    layout: str  # the model's input layout: "NCHW" or "NHWC"
    rgb: bool = False  # the model wants RGB
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True)
class RuntimeOptions:
    """How a model runs, one object for every runtime; each backend reads the fields it
    understands and ignores the rest (the note after each field says which)."""

    device: str = "AUTO"  # AUTO, CPU, GPU, NPU (OpenVINO); cuda:N (TensorFlow, OpenCV CUDA); LiteRT: CPU
    threads: int | None = None  # this model's CPU thread budget (None: the runtime's default)
    mode: str = "latency"  # latency | throughput: OpenVINO's performance hint (streams)
    batch: int | None = None  # OpenVINO: reshape the batch dimension (-1: dynamic)
    input_shape: tuple[int, ...] | None = None  # OpenVINO, OpenCV: fix the input's dynamic dims
    precision: str | None = None  # f32 / bf16 / f16 (OpenVINO, OpenCV CUDA); None: the device's
    image_input: ImageInput | None = None  # OpenVINO: take uint8 BGR images, convert inside


def pick_output_name(names: Sequence[str], wanted: Sequence[str] | None) -> str:
    """Key for an output known by several names: a wanted one if present, else the plainest."""
    for name in wanted or ():
        if name in names:
            return name
    return sorted(names, key=lambda n: ("/" in n, len(n), n))[0] if names else ""


class Backend(ABC):
    """A loaded model on one runtime and device.

    `infer` takes one feed (a dict name -> array, or a bare array for single-input models)
    whose leading dimension is the batch; when the model's batch is static and smaller, the
    batch is split into model-sized pieces and run through `infer_many`. `infer_many` runs
    a list of feeds, asynchronously/pipelined where the runtime allows, and returns one
    output dict per feed, in order. Outputs are fresh arrays the caller may keep.
    """

    name: str = ""
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    info: BackendInfo
    image_input: ImageInput | None = None  # set when the runtime converts uint8 BGR images itself

    @property
    def device(self) -> str:
        return self.info.device

    @property
    def precision(self) -> str:
        return self.info.precision

    @property
    def max_batch(self) -> int | None:
        """The static batch size of the model (None = dynamic)."""
        return self.inputs[0].batch if self.inputs else None

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> Outputs:
        """Run one feed whose batch fits the model."""

    def _normalise(self, feeds: Feeds) -> dict[str, np.ndarray]:
        if isinstance(feeds, np.ndarray):
            if len(self.inputs) != 1:
                names = ", ".join(s.name for s in self.inputs)
                raise ValueError(f"model has {len(self.inputs)} inputs ({names}): pass a dict")
            return {self.inputs[0].name: feeds}
        return dict(feeds)

    def infer(self, feeds: Feeds) -> Outputs:
        """Run one (possibly batched) feed; returns output name -> array."""
        data = self._normalise(feeds)
        limit = self.max_batch
        n = len(next(iter(data.values()))) if data else 0
        if limit and n > limit and n % limit == 0:
            parts = [{k: v[i : i + limit] for k, v in data.items()} for i in range(0, n, limit)]
            results = self.infer_many(parts)
            return {k: np.concatenate([r[k] for r in results]) for k in results[0]}
        return self._run(data)

    def infer_many(self, batches: Iterable[Feeds]) -> list[Outputs]:
        """Run several feeds. Default: stack them into one call when the batch is dynamic, else one by one.

        `batches` may be a generator: runtimes that run asynchronously pull the next feed while
        the previous ones run, so preparing it overlaps inference."""
        feeds = [self._normalise(b) for b in batches]
        if len(feeds) > 1 and self.max_batch is None and _stackable(feeds):
            sizes = [len(next(iter(f.values()))) for f in feeds]
            stacked = self._run({k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]})
            bounds = np.cumsum([0, *sizes])
            return [
                {k: v[a:b] for k, v in stacked.items()} for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            ]
        return [self._run(f) for f in feeds]

    def close(self) -> None:  # noqa: B027 (optional hook: most runtimes free on garbage collection)
        """Release the runtime's resources (idempotent)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        ins = ", ".join(f"{s.name}{list(s.shape)}" for s in self.inputs)
        return f"<{type(self).__name__} {self.info.device} {self.info.precision} inputs: {ins}>"


def _stackable(feeds: Sequence[Mapping[str, np.ndarray]]) -> bool:
    first = feeds[0]
    return all(
        f.keys() == first.keys()
        and all(f[k].shape[1:] == first[k].shape[1:] and f[k].dtype == first[k].dtype for k in f)
        for f in feeds
    )
