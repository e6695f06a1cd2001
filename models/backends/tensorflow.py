"""TensorFlow backend: SavedModel signatures, TF1 frozen graphs and Keras files.

TensorFlow is imported here only, inside `TensorFlowBackend(...)`, so `import models`, the
OpenVINO path and the CLI start without it (a TF import costs ~5 s). An NVIDIA GPU is used
when TensorFlow sees one (memory growth on, so several models share it); else the CPU.

Threads are process-global in TensorFlow: the first backend that sets `threads` fixes the
intra-/inter-op pool for the whole process (TF refuses changes after its first op); later
different values are logged and ignored. TFLite files go to `models.backends.litert`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.backends.base import Backend, BackendInfo, Outputs, RuntimeOptions, TensorSpec, log
from pipeline.errors import ModelError
from pipeline.installation import pip_install_extra

_SETUP_LOCK = threading.Lock()
_THREADS: list[int] = []  # the thread count TF was configured with (process-wide)


def _import_tf() -> Any:
    # TensorFlow's C++ start-up chatter (oneDNN, CPU features) is not for our users; --debug
    # or an explicit TF_CPP_MIN_LOG_LEVEL brings it back.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise ModelError(
            f"the tensorflow backend needs TensorFlow: {pip_install_extra('tensorflow')} (or use backend: openvino)"
        ) from None
    return tf


def setup_tensorflow(threads: int | None) -> tuple[Any, list[Any]]:
    """Import TF, apply the process-wide thread budget once, turn on GPU memory growth."""
    tf = _import_tf()
    with _SETUP_LOCK:
        if threads is not None:
            if not _THREADS:
                try:
                    tf.config.threading.set_intra_op_parallelism_threads(threads)
                    tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
                    _THREADS.append(threads)
                except RuntimeError:
                    log.warning(
                        "tensorflow: already initialised, cannot set threads=%d (process-wide)", threads
                    )
            elif _THREADS[0] != threads:
                log.warning(
                    "tensorflow: threads=%d ignored, the process already uses %d (process-wide)",
                    threads,
                    _THREADS[0],
                )
        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except (RuntimeError, ValueError):
                pass  # already initialised: growth was set (or not) by the first user
    return tf, gpus


def tensorflow_device(device: str, gpus: Sequence[Any]) -> str:
    """`AUTO` -> first GPU if any, else CPU; `GPU`, `GPU:n`, `cuda:n` -> that GPU (must exist)."""
    text = (device or "AUTO").strip().upper()
    if text in ("AUTO", ""):
        return "/GPU:0" if gpus else "/CPU:0"
    if text == "CPU":
        return "/CPU:0"
    if text.startswith(("GPU", "CUDA", "/GPU")):
        index = int(text.rsplit(":", 1)[1]) if ":" in text else 0
        if index >= len(gpus):
            raise ModelError(
                f"device {device!r}: TensorFlow sees {len(gpus)} GPU(s); use device: CPU or AUTO"
            )
        return f"/GPU:{index}"
    raise ModelError(f"device {device!r} is not a TensorFlow device (use AUTO, CPU, GPU, cuda:N)")


def _shape(shape: Any) -> tuple[int | None, ...]:
    if getattr(shape, "rank", 0) is None:  # unknown rank (some frozen-graph outputs)
        return ()
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return tuple(None if d is None or d < 0 else int(d) for d in dims) if dims is not None else ()


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


class TensorFlowBackend(Backend):
    """A SavedModel signature, a pruned frozen graph or a Keras model, run eagerly on one device."""

    name = "tensorflow"

    def __init__(
        self,
        path: str | Path,
        kind: str,
        options: RuntimeOptions = RuntimeOptions(),
        *,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        signature: str = "serving_default",
    ) -> None:
        tf, gpus = setup_tensorflow(options.threads)
        self._tf = tf
        self._device = tensorflow_device(options.device, gpus)
        self._lock = threading.Lock()
        self._module: Any = None  # a SavedModel / Keras model: owns the variables _call uses
        self._call: Callable[[dict[str, np.ndarray]], Outputs] | None = None  # set by a loader
        path = Path(path)
        loader = {"savedmodel": self._savedmodel, "frozen_graph": self._frozen, "keras": self._keras}.get(
            kind
        )
        if loader is None:
            raise ModelError(f"the tensorflow backend cannot run {kind} files ({path.name})")
        try:
            with tf.device(self._device):
                loader(path, inputs, outputs, signature)
        except (OSError, KeyError, ValueError, RuntimeError, tf.errors.OpError) as exc:
            raise ModelError(f"TensorFlow cannot load {path}: {str(exc).splitlines()[0]}") from None
        gpu_name = ""
        if self._device.startswith("/GPU"):
            details = tf.config.experimental.get_device_details(gpus[int(self._device[-1])])
            gpu_name = f" ({details.get('device_name', 'GPU')})"
        self.info = BackendInfo(
            backend="tensorflow",
            runtime=f"tensorflow {tf.__version__}",
            device=self._device.strip("/") + gpu_name,
            precision=str(tf.keras.mixed_precision.global_policy().compute_dtype).replace("float", "f"),
            threads=tf.config.threading.get_intra_op_parallelism_threads() or None,
            extra={"format": kind},
        )

    # -- loaders: each sets self.inputs, self.outputs and self._call(feeds) -> dict

    def _savedmodel(self, path: Path, inputs: Any, outputs: Any, signature: str) -> None:
        tf = self._tf
        self._module = tf.saved_model.load(str(path))  # keep a reference: it owns the variables
        if signature not in self._module.signatures:
            raise ValueError(f"no signature {signature!r} (has: {', '.join(self._module.signatures)})")
        fn = self._module.signatures[signature]
        specs = fn.structured_input_signature[1]
        self.inputs = [
            TensorSpec(k, _shape(s.shape), np.dtype(s.dtype.as_numpy_dtype)) for k, s in specs.items()
        ]
        self.outputs = [
            TensorSpec(k, _shape(s.shape), np.dtype(s.dtype.as_numpy_dtype))
            for k, s in fn.structured_outputs.items()
        ]
        self._call = lambda feeds: {
            k: v.numpy() for k, v in fn(**{n: tf.constant(a) for n, a in feeds.items()}).items()
        }

    def _frozen(self, path: Path, inputs: Any, outputs: Any, signature: str) -> None:
        tf = self._tf
        if not outputs:
            raise ValueError("a frozen graph needs its output tensor names (catalog `outputs`)")
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(path.read_bytes())
        wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        graph = wrapped.graph
        if not inputs:
            inputs = [op.name for op in graph.get_operations() if op.type == "Placeholder"]
        ins = [graph.get_tensor_by_name(_tensor_name(n)) for n in inputs]
        outs = [graph.get_tensor_by_name(_tensor_name(n)) for n in outputs]
        pruned = wrapped.prune(ins, outs)
        self.inputs = [
            TensorSpec(n, _shape(t.shape), np.dtype(t.dtype.as_numpy_dtype))
            for n, t in zip(inputs, ins, strict=True)
        ]
        self.outputs = [
            TensorSpec(n, _shape(t.shape), np.dtype(t.dtype.as_numpy_dtype))
            for n, t in zip(outputs, outs, strict=True)
        ]
        names = [s.name for s in self.inputs]
        self._call = lambda feeds: {
            s.name: v.numpy()
            for s, v in zip(self.outputs, pruned(*[tf.constant(feeds[n]) for n in names]), strict=True)
        }

    def _keras(self, path: Path, inputs: Any, outputs: Any, signature: str) -> None:
        import keras

        model = keras.models.load_model(str(path), compile=False)  # Keras-2 training configs do not load
        self._module = model
        self.inputs = [TensorSpec(t.name, _shape(t.shape), np.dtype(t.dtype)) for t in model.inputs]
        out_names = list(getattr(model, "output_names", None) or [t.name for t in model.outputs])
        self.outputs = [
            TensorSpec(n, _shape(t.shape), np.dtype(t.dtype))
            for n, t in zip(out_names, model.outputs, strict=True)
        ]
        fn = self._tf.function(
            lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False), reduce_retracing=True
        )
        names = [s.name for s in self.inputs]

        def call(feeds: dict[str, np.ndarray]) -> Outputs:
            result = fn(*[self._tf.constant(feeds[n]) for n in names])
            values = result if isinstance(result, (list, tuple)) else [result]
            return {n: v.numpy() for n, v in zip(out_names, values, strict=True)}

        self._call = call

    def _run(self, feeds: dict[str, np.ndarray]) -> Outputs:
        with self._lock, self._tf.device(self._device):
            if self._call is None:
                raise ModelError("TensorFlow backend used after close()")
            return self._call(feeds)

    def close(self) -> None:
        self._module = None
        self._call = None
