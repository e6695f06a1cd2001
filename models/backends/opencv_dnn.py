"""OpenCV DNN backend: ONNX, TensorFlow (.pb [+ .pbtxt]), Caffe and Darknet files.

The fallback runtime: always installed, CPU by default, CUDA when this OpenCV build has it
(pip wheels do not). `threads` calls `cv2.setNumThreads`, which is process-global: it also
changes every other OpenCV call (resize, colour conversion) in this process. cv2.dnn runs one
image per forward here (fixed-batch ONNX exports mis-shape larger batches), so `infer_many`
is sequential.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from models.backends.base import Backend, BackendInfo, Outputs, RuntimeOptions, TensorSpec, log
from pipeline.errors import ModelError

_CONFIG_SUFFIXES = {".caffemodel": ".prototxt", ".weights": ".cfg", ".pb": ".pbtxt"}


def cuda_available() -> bool:
    """True when this cv2 build has CUDA and sees a device."""
    try:
        return cv2.cuda.getCudaEnabledDeviceCount() > 0
    except (AttributeError, cv2.error):
        return False


def _target(device: str, precision: str | None) -> tuple[int, int, str, str]:
    text = (device or "AUTO").strip().upper()
    wants_gpu = text.startswith(("GPU", "CUDA"))
    if wants_gpu and not cuda_available():
        raise ModelError(f"device {device!r}: this OpenCV build has no CUDA device; use device: CPU")
    if (wants_gpu or text == "AUTO") and cuda_available():
        fp16 = (precision or "").lower() in ("f16", "fp16")
        target = cv2.dnn.DNN_TARGET_CUDA_FP16 if fp16 else cv2.dnn.DNN_TARGET_CUDA
        return cv2.dnn.DNN_BACKEND_CUDA, target, "CUDA", "f16" if fp16 else "f32"
    if text not in ("AUTO", "CPU"):
        raise ModelError(f"device {device!r} is not an OpenCV DNN device (use AUTO, CPU, cuda)")
    return cv2.dnn.DNN_BACKEND_OPENCV, cv2.dnn.DNN_TARGET_CPU, "CPU", "f32"


def _config_file(path: Path, config: str | Path | None) -> Path | None:
    """The given config, else the sibling file a Caffe/Darknet/TF graph needs (when present)."""
    if config is not None:
        return Path(config) if config else None
    suffix = _CONFIG_SUFFIXES.get(path.suffix)
    sibling = path.with_suffix(suffix) if suffix else None
    return sibling if sibling is not None and sibling.is_file() else None


def _read_net(path: Path, config: Path | None) -> cv2.dnn.Net:
    try:
        return cv2.dnn.readNet(str(path), str(config) if config else "")
    except cv2.error as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ModelError(f"OpenCV DNN cannot read {path.name}: {lines[-1] if lines else exc}") from None


def _output_order(net_outputs: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """The net's unconnected outputs, the `wanted` ones first in their given order."""
    names = list(net_outputs)
    if not wanted:
        return names
    return [n for n in wanted if n in names] + [n for n in names if n not in wanted]


class OpenCvDnnBackend(Backend):
    """A `cv2.dnn.Net` with its preferable backend/target set."""

    name = "opencv"

    def __init__(
        self,
        path: str | Path,
        options: RuntimeOptions = RuntimeOptions(),
        *,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        config: str | Path | None = None,
    ) -> None:
        path = Path(path)
        net = _read_net(path, _config_file(path, config))
        threads, input_shape = options.threads, options.input_shape
        backend_id, target_id, device_name, prec = _target(options.device, options.precision)
        net.setPreferableBackend(backend_id)
        net.setPreferableTarget(target_id)
        if threads is not None:
            log.debug("opencv: cv2.setNumThreads(%d) (process-wide)", threads)
            cv2.setNumThreads(int(threads))
        self._net: cv2.dnn.Net | None = net
        shape = tuple(input_shape) if input_shape else (1, None, None, None)
        self._input_names = list(inputs or [])
        self.inputs = [TensorSpec(n, shape, np.dtype(np.float32)) for n in (self._input_names or ["input"])]
        names = _output_order(net.getUnconnectedOutLayersNames(), outputs)
        self.outputs = [TensorSpec(n, (), np.dtype(np.float32)) for n in names]
        self._lock = threading.Lock()
        self.info = BackendInfo(
            backend="opencv",
            runtime=f"opencv {cv2.__version__}",
            device=device_name,
            precision=prec,
            threads=cv2.getNumThreads(),
        )

    @property
    def max_batch(self) -> int | None:
        return 1

    def _run(self, feeds: dict[str, np.ndarray]) -> Outputs:
        with self._lock:
            if self._net is None:
                raise ModelError("OpenCV DNN backend used after close()")
            for name, value in feeds.items():
                blob = np.ascontiguousarray(value, dtype=np.float32)
                if self._input_names:
                    self._net.setInput(blob, name)
                else:
                    self._net.setInput(blob)
            names = [s.name for s in self.outputs]
            return {n: np.array(v, copy=True) for n, v in zip(names, self._net.forward(names), strict=True)}

    def close(self) -> None:
        self._net = None
