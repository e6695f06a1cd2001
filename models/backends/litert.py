"""TFLite files on the `tensorflow` backend, through LiteRT (`ai_edge_litert`).

LiteRT runs on the CPU (XNNPACK) and needs no TensorFlow import; `tf.lite.Interpreter` is
the fallback when `ai-edge-litert` is not installed. `threads` is per interpreter here (not
process-wide as in TensorFlow). Dynamic batch dimensions are resized on demand.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from models.backends.base import Backend, BackendInfo, Outputs, RuntimeOptions, TensorSpec, log
from pipeline.errors import ModelError


def _interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai-edge-litert {metadata.version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        import tensorflow as tf
    except ImportError:
        raise ModelError(
            "TFLite files need ai-edge-litert (or tensorflow): pip install ai-edge-litert"
        ) from None
    return tf.lite.Interpreter, f"tf.lite {tf.__version__}"


def _spec(detail: dict[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(None if int(d) < 0 else int(d) for d in signature)
    scale, zero = detail.get("quantization", (0.0, 0))
    quant = (float(scale), int(zero)) if scale else None
    return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]), (), quant)


class LiteRtBackend(Backend):
    """One LiteRT interpreter (not thread-safe by itself: calls are serialised)."""

    name = "tensorflow"

    def __init__(
        self,
        path: str | Path,
        options: RuntimeOptions = RuntimeOptions(),
        *,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
    ) -> None:
        interpreter_cls, runtime = _interpreter_class()
        device, threads = options.device, options.threads
        if (device or "AUTO").upper() not in ("AUTO", "CPU"):
            log.info(
                "tflite: %s runs on the CPU (device %s ignored; no GPU delegate is used)",
                Path(path).name,
                device,
            )
        try:
            self._it = interpreter_cls(model_path=str(path), num_threads=threads)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"LiteRT cannot load {path}: {str(exc).splitlines()[0]}") from None
        self._in = self._it.get_input_details()
        self._out = self._it.get_output_details()
        self.inputs = [_spec(d) for d in self._in]
        self.outputs = [_spec(d) for d in self._out]
        self._lock = threading.Lock()
        quantized = any(np.dtype(d["dtype"]) in (np.int8, np.uint8) for d in self._it.get_tensor_details())
        self.info = BackendInfo(
            backend="tensorflow",
            runtime=runtime,
            device="CPU (XNNPACK)",
            precision="int8" if quantized else "f32",
            threads=threads,
            extra={"format": "tflite"},
        )

    def _run(self, feeds: dict[str, np.ndarray]) -> Outputs:
        with self._lock:
            resized = False
            for detail, spec in zip(self._in, self.inputs, strict=True):
                value = feeds[spec.name]
                if tuple(detail["shape"]) != value.shape:
                    self._it.resize_tensor_input(detail["index"], list(value.shape))
                    resized = True
            if resized:
                self._it.allocate_tensors()
                self._in = self._it.get_input_details()
                self._out = self._it.get_output_details()
            for detail, spec in zip(self._in, self.inputs, strict=True):
                self._it.set_tensor(
                    detail["index"], np.ascontiguousarray(feeds[spec.name], dtype=detail["dtype"])
                )
            self._it.invoke()
            return {
                spec.name: self._it.get_tensor(d["index"]).copy()
                for d, spec in zip(self._out, self.outputs, strict=True)
            }

    def close(self) -> None:
        self._it = None
