"""OpenVINO backend: IR, ONNX, TFLite, TF frozen graphs and SavedModels on CPU/GPU/NPU/AUTO.

One `ov.Core` per process (it owns the plugins and their thread pools). `threads` becomes the
CPU plugin's INFERENCE_NUM_THREADS so stages sharing a few cores do not oversubscribe them.
`precision=None` keeps the device's default (the CPU picks bf16 on AVX512-BF16/AMX parts: faster,
scores move by ~0.01); pass "f32" for results that match TensorFlow/OpenCV to 1e-4.
`mode="throughput"` asks for several streams and `infer_many` keeps
OPTIMAL_NUMBER_OF_INFER_REQUESTS requests in flight through an `AsyncInferQueue`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from models.backends.base import Backend, BackendInfo, Feeds, Outputs, TensorSpec, log, pick_output_name
from pipeline.errors import ModelError

_MODES = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


@lru_cache(maxsize=1)
def shared_core() -> ov.Core:
    """The process-wide `ov.Core`."""
    return ov.Core()


def openvino_device(device: str) -> str:
    """Map a vigil device name to an OpenVINO one (CPU, GPU[.n], NPU, AUTO[:...], MULTI:..., HETERO:...)."""
    text = (device or "AUTO").strip()
    upper = text.upper()
    if upper.startswith(("CUDA", "/GPU")):
        raise ModelError(
            f"device {device!r} is a CUDA device: OpenVINO runs on CPU, GPU (Intel), NPU or AUTO"
        )
    return upper


def _spec(port: Any, wanted: Sequence[str] | None) -> TensorSpec:
    names = sorted(port.get_names())
    shape = tuple(None if d.is_dynamic else d.get_length() for d in port.get_partial_shape())
    key = pick_output_name(names, wanted) or port.get_any_name()
    return TensorSpec(
        key, shape, np.dtype(port.get_element_type().to_dtype()), tuple(n for n in names if n != key)
    )


def _read(core: ov.Core, path: Path) -> ov.Model:
    try:
        return core.read_model(str(path))
    except RuntimeError as first:
        try:  # SavedModels with unusual signatures and some TF graphs need the converter
            return ov.convert_model(str(path))
        except Exception:
            raise ModelError(f"OpenVINO cannot read {path}: {str(first).splitlines()[0]}") from None


def _reshape(model: ov.Model, input_shape: Sequence[int] | None, batch: int | None) -> None:
    """Fill dynamic non-batch dims from `input_shape` (static shapes run faster on CPU) and/or
    set the batch size, when the graph allows; static dims of the model are kept."""
    shapes, changed = {}, False
    for port in model.inputs:
        dims = [-1 if d.is_dynamic else d.get_length() for d in port.get_partial_shape()]
        new = list(dims)
        if input_shape is not None and len(input_shape) == len(dims):
            new = [dims[0]] + [
                int(h) if d == -1 else d for d, h in zip(dims[1:], input_shape[1:], strict=True)
            ]
        if batch is not None and new:
            new[0] = batch
        changed |= new != dims
        shapes[port.get_any_name()] = ov.PartialShape(new)
    if not changed:
        return
    try:
        model.reshape(shapes)
    except RuntimeError as exc:
        log.info("openvino: keeping the model's own input shape (%s)", str(exc).splitlines()[0])


def _compile_config(
    core: ov.Core, device: str, mode: str, threads: int | None, precision: str | None
) -> dict[str, Any]:
    """compile_model properties: the performance hint, and the thread budget and precision
    where the device understands them (nested under DEVICE_PROPERTIES for AUTO/MULTI/HETERO)."""
    cfg: dict[str, Any] = {"PERFORMANCE_HINT": _MODES.get(mode.lower(), "LATENCY")}
    cpu: dict[str, Any] = {}
    if threads is not None:
        cpu["INFERENCE_NUM_THREADS"] = int(threads)
    if precision not in (None, "auto"):
        cpu["INFERENCE_PRECISION_HINT"] = precision
    if device == "CPU":
        cfg.update(cpu)
    elif device.startswith(("GPU", "NPU")):
        cfg.update({k: v for k, v in cpu.items() if k == "INFERENCE_PRECISION_HINT"})
    elif cpu and "CPU" in core.available_devices:
        cfg["DEVICE_PROPERTIES"] = {"CPU": cpu}  # AUTO/MULTI/HETERO may place the work on the CPU
    return cfg


class OpenVinoBackend(Backend):
    """A compiled OpenVINO model with one sync request and a lazily built async queue."""

    name = "openvino"

    def __init__(
        self,
        path: str | Path,
        device: str = "AUTO",
        threads: int | None = None,
        *,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        mode: str = "latency",
        batch: int | None = None,
        input_shape: Sequence[int] | None = None,
        precision: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        core = shared_core()
        path = Path(path)
        dev = openvino_device(device)
        model = _read(core, path)
        _reshape(model, input_shape, batch)
        cfg = _compile_config(core, dev, mode, threads, precision)
        cfg.update(config or {})
        try:
            self._compiled = core.compile_model(model, dev, cfg)
        except RuntimeError as exc:
            msg = str(exc).strip().splitlines()
            raise ModelError(
                f"OpenVINO cannot compile {path.name} for {dev}: {msg[0] if msg else exc}"
            ) from None
        self.inputs = [_spec(p, inputs) for p in self._compiled.inputs]
        self.outputs = [_spec(p, outputs) for p in self._compiled.outputs]
        self._request = self._compiled.create_infer_request()
        self._queue: ov.AsyncInferQueue | None = None
        self._lock = threading.Lock()
        executed = list(self._property("EXECUTION_DEVICES", [dev]))
        self.info = BackendInfo(
            backend="openvino",
            runtime=f"openvino {ov.get_version().split('-')[0]}",
            device=",".join(executed),
            precision=str(self._property("INFERENCE_PRECISION_HINT", "default", executed)),
            threads=self._property("INFERENCE_NUM_THREADS", threads, executed) or threads,
            requests=max(1, int(self._property("OPTIMAL_NUMBER_OF_INFER_REQUESTS", 1))),
            extra={"mode": mode.lower()},
        )

    def _property(self, name: str, default: Any, devices: Sequence[str] = ()) -> Any:
        """A compiled-model property; AUTO/MULTI keep per-device ones under DEVICE_PROPERTIES."""
        try:
            value = self._compiled.get_property(name)
        except (RuntimeError, TypeError):
            try:
                per_device = self._compiled.get_property("DEVICE_PROPERTIES")
                value = per_device[devices[0].split(".")[0]][name]
            except (RuntimeError, TypeError, KeyError, IndexError):
                return default
        if isinstance(value, ov.Type):
            return value.get_type_name()
        return value

    def _collect(self, request: ov.InferRequest) -> Outputs:
        return {spec.name: request.get_output_tensor(i).data.copy() for i, spec in enumerate(self.outputs)}

    def _run(self, feeds: dict[str, np.ndarray]) -> Outputs:
        with self._lock:
            self._request.infer(feeds)
            return self._collect(self._request)

    def infer_many(self, batches: Sequence[Feeds]) -> list[Outputs]:
        """All feeds through the async queue (OPTIMAL_NUMBER_OF_INFER_REQUESTS in flight)."""
        feeds = [self._normalise(b) for b in batches]
        if len(feeds) <= 1:
            return [self._run(f) for f in feeds]
        results: list[Outputs | None] = [None] * len(feeds)

        def done(request: ov.InferRequest, index: int) -> None:
            results[index] = self._collect(request)

        with self._lock:
            if self._queue is None:
                self._queue = ov.AsyncInferQueue(self._compiled, self.info.requests)
            self._queue.set_callback(done)
            for i, feed in enumerate(feeds):
                self._queue.start_async(feed, userdata=i)
            self._queue.wait_all()
        done_results = [r for r in results if r is not None]
        if len(done_results) != len(results):
            missing = [i for i, r in enumerate(results) if r is None]
            raise ModelError(f"OpenVINO async inference returned no result for request(s) {missing}")
        return done_results

    def close(self) -> None:
        self._queue = None
        self._request = None
        self._compiled = None
