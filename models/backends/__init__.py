"""Inference backends: `load_backend(path, backend, device, threads)` -> `Backend`.

Runtimes are imported on first use only (TensorFlow takes ~5 s to import): `openvino`
(models.backends.openvino), `tensorflow` (SavedModel/frozen graph/Keras in
models.backends.tensorflow, TFLite through LiteRT in models.backends.litert) and `opencv`
(models.backends.opencv_dnn). `auto` is explained in models.backends.selection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from models.backends.base import Backend, BackendInfo, ImageInput, RuntimeOptions, TensorSpec
from models.catalog import KIND_BACKENDS, MODEL_SUFFIXES, FormatKind
from pipeline.errors import ModelError

__all__ = ["Backend", "BackendInfo", "ImageInput", "RuntimeOptions", "TensorSpec", "kind_of", "load_backend"]

log = logging.getLogger("vigil.models")


def kind_of(path: str | Path) -> FormatKind:
    """The format kind of a model file or SavedModel folder, from its name."""
    p = Path(path)
    if p.is_dir() and (p / "saved_model.pb").is_file():
        return "savedmodel"
    try:
        return MODEL_SUFFIXES[p.suffix.lower()]
    except KeyError:
        raise ModelError(
            f"cannot tell the model type of {p.name} (known: {', '.join(sorted(MODEL_SUFFIXES))})"
        ) from None


def load_backend(
    path: str | Path,
    backend: str = "auto",
    device: str = "AUTO",
    threads: int | None = None,
    *,
    kind: str | None = None,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    mode: str = "latency",
    batch: int | None = None,
    input_shape: Sequence[int] | None = None,
    precision: str | None = None,
    image_input: ImageInput | None = None,
) -> Backend:
    """Load a model file on a runtime.

    backend: openvino | tensorflow | opencv | auto; device: AUTO, CPU, GPU, NPU, cuda:N (each
    backend accepts its own); threads: this model's CPU thread budget (None = runtime default).
    inputs/outputs: tensor names (needed by frozen graphs; they also pick the key of outputs
    known by several names); mode: latency | throughput (OpenVINO streams); batch: reshape
    the batch dimension (OpenVINO); input_shape: fix dynamic input dims (OpenVINO);
    precision: None = device default, or f32/bf16/f16 (OpenVINO, OpenCV CUDA); image_input:
    let the runtime take uint8 BGR images and convert them itself (OpenVINO; check
    `Backend.image_input` to see whether it did).
    """
    if backend not in ("auto", "openvino", "tensorflow", "opencv"):
        raise ModelError(f"unknown backend {backend!r} (use openvino, tensorflow, opencv or auto)")
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} not found")
    kind = kind or kind_of(path)
    backend = _runtime_for(path, backend, kind)
    options = RuntimeOptions(
        device,
        threads,
        mode,
        batch,
        None if input_shape is None else tuple(input_shape),
        precision,
        image_input,
    )
    if backend == "openvino":
        from models.backends.openvino import OpenVinoBackend

        return OpenVinoBackend(path, options, inputs=inputs, outputs=outputs)
    if backend == "tensorflow" and kind == "tflite":
        from models.backends.litert import LiteRtBackend

        return LiteRtBackend(path, options, inputs=inputs, outputs=outputs)
    if backend == "tensorflow":
        from models.backends.tensorflow import TensorFlowBackend

        return TensorFlowBackend(path, kind, options, inputs=inputs, outputs=outputs)
    from models.backends.opencv_dnn import OpenCvDnnBackend

    return OpenCvDnnBackend(path, options, inputs=inputs, outputs=outputs)


def _runtime_for(path: Path, backend: str, kind: str) -> str:
    """`backend`, or for `auto` the best installed one; refused when it cannot read `kind` files."""
    readable = KIND_BACKENDS.get(kind, ())
    if backend == "auto":
        from models.backends.selection import rank_backends

        ranked = rank_backends(readable, [kind])
        if not ranked:
            raise ModelError(
                f"no installed runtime reads {kind} files ({path.name}); they need {', '.join(readable)}"
            )
        backend, reason = ranked[0]
        log.info("%s: backend auto -> %s (%s)", path.name, backend, reason)
    if backend not in readable:
        raise ModelError(
            f"backend {backend!r} cannot run {kind} files ({path.name}); use {', '.join(readable) or 'none'}"
        )
    return backend
