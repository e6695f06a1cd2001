"""OpenVINO backend: IR, ONNX, TFLite, TF frozen graphs and SavedModels on CPU/GPU/NPU/AUTO.

One `ov.Core` per process (it owns the plugins and their thread pools). `threads` becomes the
CPU plugin's INFERENCE_NUM_THREADS so stages sharing a few cores do not oversubscribe them.
`precision=None` keeps the device's default (the CPU picks bf16 on AVX512-BF16/AMX parts: faster,
scores move by ~0.01); pass "f32" for results that match TensorFlow/OpenCV to 1e-4.
`mode="throughput"` asks for several streams and `infer_many` keeps
OPTIMAL_NUMBER_OF_INFER_REQUESTS requests in flight through an `AsyncInferQueue`, pulling each
feed only when a request is free (a generator of feeds prepares the next while others run).
`image_input` puts the input conversion into the compiled model with a `PrePostProcessor`
(uint8 NHWC BGR in; layout, type, channel order and mean/scale done by the runtime), the way
OpenVINO's model API does: fewer, smaller copies in Python and the work off the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from models.backends.base import (
    Backend,
    BackendInfo,
    Feeds,
    ImageInput,
    Outputs,
    RuntimeOptions,
    TensorSpec,
    log,
    pick_output_name,
)
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


def _with_image_input(model: ov.Model, image: ImageInput) -> ov.Model | None:
    """`model` taking uint8 NHWC BGR images on its first input (see `ImageInput`), or None when
    that input is not a static 4-D image tensor with 3 channels."""
    port = model.inputs[0]
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic or len(shape) != 4:
        return None
    three = [not d.is_dynamic and d.get_length() == 3 for d in (shape[1], shape[3])]
    if not any(three):
        return None
    layout = image.layout if all(three) else ("NCHW" if three[0] else "NHWC")  # the model's shape decides
    ppp = ov.preprocess.PrePostProcessor(model)
    step = ppp.input(0)
    step.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    step.model().set_layout(ov.Layout(layout))
    pre = step.preprocess()
    if image.rgb:
        pre.reverse_channels()
    pre.convert_element_type(port.get_element_type())
    if image.mean:
        pre.mean(float(image.mean))
    if image.std != 1.0:
        pre.scale(float(image.std))
    return ppp.build()


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
        options: RuntimeOptions = RuntimeOptions(),
        *,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        core = shared_core()
        path = Path(path)
        dev = openvino_device(options.device)
        mode, threads, image_input = options.mode, options.threads, options.image_input
        model = _read(core, path)
        _reshape(model, options.input_shape, options.batch)
        if image_input is not None:
            try:
                converted = _with_image_input(model, image_input)
            except RuntimeError as exc:
                log.info("openvino: no in-model input conversion (%s)", str(exc).splitlines()[0])
                converted = None
            if converted is not None:
                model, self.image_input = converted, image_input
        cfg = _compile_config(core, dev, mode, threads, options.precision)
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

    def _shareable(self, feeds: dict[str, np.ndarray]) -> bool:
        """Whether the runtime may read `feeds` in place (no copy): C-contiguous, writable, and
        already in the dtype each input expects (else OpenVINO's own copy converts them)."""
        dtypes = {name: spec.dtype for spec in self.inputs for name in (spec.name, *spec.aliases)}
        return all(
            isinstance(v, np.ndarray)
            and v.flags.c_contiguous
            and v.flags.writeable
            and dtypes.get(k) == v.dtype
            for k, v in feeds.items()
        )

    def _run(self, feeds: dict[str, np.ndarray]) -> Outputs:
        with self._lock:
            self._request.infer(feeds, share_inputs=self._shareable(feeds))
            return self._collect(self._request)

    def infer_many(self, batches: Iterable[Feeds]) -> list[Outputs]:
        """All feeds through the async queue (OPTIMAL_NUMBER_OF_INFER_REQUESTS in flight).

        Feeds are pulled one at a time, when a request is free: a generator's next feed is
        prepared while the earlier ones run."""
        if isinstance(batches, Sequence) and len(batches) <= 1:
            return [self._run(self._normalise(f)) for f in batches]
        results: dict[int, Outputs] = {}

        def done(request: ov.InferRequest, index: int) -> None:
            results[index] = self._collect(request)

        count, held = 0, []  # shared (zero-copy) inputs stay referenced until their request is done
        with self._lock:
            if self._queue is None:
                self._queue = ov.AsyncInferQueue(self._compiled, self.info.requests)
            self._queue.set_callback(done)
            try:
                for count, feed in enumerate(batches, 1):
                    data = self._normalise(feed)
                    held.append(data)
                    self._queue.start_async(data, userdata=count - 1, share_inputs=self._shareable(data))
            finally:
                self._queue.wait_all()
        done_results = [results[i] for i in range(count) if i in results]
        if len(done_results) != count:
            missing = [i for i in range(count) if i not in results]
            raise ModelError(f"OpenVINO async inference returned no result for request(s) {missing}")
        return done_results

    def close(self) -> None:
        self._queue = None
        self._request = None
        self._compiled = None
