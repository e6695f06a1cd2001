"""Build a detector: a catalog model (or a user's YOLO file) on the runtime that fits.

`build_detector("yolox-nano", backend="auto")` resolves and checks the files, picks the
runtime and returns the family's `Detector` (object_detectors, face_detectors). Kept apart
from the base classes in `models.detectors`, which the families build on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.detectors import DETECTOR_DECODERS, Detector
from models.face_detectors import FACE_DETECTORS, YuNetOpenCvDetector
from models.loader import Choice, choose, open_backend
from models.object_detectors import OBJECT_DETECTORS
from pipeline.errors import ModelError


def build_detector(
    model: str,
    backend: str = "auto",
    device: str = "AUTO",
    threads: int | None = None,
    labels: str | Path | None = None,
    conf: float | None = None,
    nms: float | None = None,
    **kw: Any,
) -> Detector:
    """A ready detector for a catalog name/alias or a YOLO model file (+ `labels` file).

    Extra options: mode (latency | throughput), precision (f32, bf16, f16; None = device
    default), layout (user YOLO files: auto | yolox | yolov5 | yolov8), input (an `InputSpec`
    for a user file whose preprocessing differs from the YOLOv5/v8 default).
    """
    mode, precision = kw.pop("mode", "latency"), kw.pop("precision", None)
    layout, user_input = kw.pop("layout", "auto"), kw.pop("input", None)
    if kw:
        raise ModelError(f"build_detector: unknown option(s) {', '.join(sorted(kw))}")
    choice = choose(model, backend, labels=labels, user_input=user_input)
    return open_detector(choice, device, threads, conf, nms, mode=mode, precision=precision, layout=layout)


def open_detector(
    choice: Choice,
    device: str = "AUTO",
    threads: int | None = None,
    conf: float | None = None,
    nms: float | None = None,
    *,
    mode: str = "latency",
    precision: str | None = None,
    layout: str = "auto",
) -> Detector:
    """The detector for a model already resolved by `choose` (see `build_detector`)."""
    from models.object_detectors import YoloDetector

    decoder = choice.resolved.format.decoder
    if decoder not in DETECTOR_DECODERS:
        raise ModelError(
            f"model {choice.resolved.name!r} is a {choice.resolved.entry.task} classifier, not a detector"
        )
    if decoder == "yunet" and choice.backend == "opencv":
        return YuNetOpenCvDetector(choice, threads, conf, nms)
    loaded = open_backend(choice, device, threads, mode=mode, precision=precision, images_in=True)
    if decoder == "yolo":  # the one wrapper with an extra option
        return YoloDetector(loaded, conf, nms, layout=layout)
    return {**OBJECT_DETECTORS, **FACE_DETECTORS}[decoder](loaded, conf, nms)
