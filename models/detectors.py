"""Detector glue: a catalog model (or a user's YOLO file) on a backend -> `Detections`.

The detector base classes; `models.detector_factory.build_detector("yolox-nano")` resolves the
files, picks the runtime, and returns a `Detector` whose `detect(image_bgr)` gives boxes in the ORIGINAL image's pixels,
scores, the model's own class ids and their labels (face landmarks as the "landmarks"
attribute, (N, K, 2) pixels). `detect_many(images)` runs a list through the backend's
async/batched path. The family wrappers (object_detectors, face_detectors) own the
pre/post-processing; no runtime is imported here.

Class ids are the model's own (YOLOX/SSD COCO: 0 = person; TF OD API and OMZ graphs:
1 = person); compare `label`s across models, not ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np

from models.backends import Backend
from models.catalog import InputSpec
from models.labels import label_for
from models.loader import LoadedModel, ModelRunInfo
from models.preprocessing import InputTransform, pack_image, prepare_image
from pipeline.frame import Detections

DETECTOR_DECODERS = ("yolox", "yolo", "tfod", "ssd_anchors", "detection_output", "yunet", "blazeface")


DetectorInfo = ModelRunInfo  # what `Detector.info` returns


class Detector(ABC):
    """Runs one detection model; `detect` for one BGR image, `detect_many` for a list."""

    @property
    @abstractmethod
    def info(self) -> DetectorInfo:
        """Model, backend, device and precision that run this detector."""

    @abstractmethod
    def detect(self, image_bgr: np.ndarray) -> Detections:
        """Detections on one H x W x 3 uint8 BGR image, in its pixels."""

    def detect_many(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detections for several images, in order."""
        return [self.detect(image) for image in images]

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the runtime."""

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BackendDetector(Detector):
    """A detector whose network runs on a `Backend`; subclasses decode one family's outputs."""

    def __init__(self, loaded: LoadedModel, conf: float | None = None, nms: float | None = None) -> None:
        self.loaded = loaded
        resolved = loaded.resolved
        self.spec: InputSpec = resolved.format.input
        self.conf = resolved.format.defaults.conf if conf is None else float(conf)
        self.nms = resolved.format.defaults.nms if nms is None else float(nms)
        self.labels: Sequence[str] = resolved.labels or ()
        self.label_offset = resolved.label_offset
        self.input_size = self.spec.size or self._size_from_backend(loaded.backend)
        if resolved.user_file:  # a user's file: the tensor layout comes from the model itself
            shape = loaded.backend.inputs[0].shape if loaded.backend.inputs else ()
            if len(shape) == 4 and (shape[1] in (1, 3)) != (shape[3] in (1, 3)):
                self.spec = self.spec.model_copy(update={"layout": "NCHW" if shape[1] in (1, 3) else "NHWC"})
        self.input_name = loaded.backend.inputs[0].name
        # the runtime converts uint8 BGR frames itself (OpenVINO PrePostProcessor): hand it pixels
        self._prepare_input = pack_image if loaded.backend.image_input is not None else prepare_image
        self.output_names = [o.name for o in resolved.format.outputs]

    @staticmethod
    def _size_from_backend(backend: Backend) -> tuple[int, int] | None:
        shape = backend.inputs[0].shape if backend.inputs else ()
        if len(shape) != 4:
            return None
        h, w = (shape[2], shape[3]) if shape[1] in (1, 3) else (shape[1], shape[2])
        return (w, h) if w and h else None

    @property
    def backend(self) -> Backend:
        return self.loaded.backend

    @property
    def info(self) -> DetectorInfo:
        return self.loaded.info()

    def output(self, outputs: dict[str, np.ndarray], index: int) -> np.ndarray:
        """The catalog's `index`-th output (by name; by position when the names differ)."""
        if index < len(self.output_names) and self.output_names[index] in outputs:
            return outputs[self.output_names[index]]
        return list(outputs.values())[index]

    def _prepare(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], InputTransform]:
        tensor, transform = self._prepare_input(image, self.spec, self.input_size)
        return {self.input_name: tensor}, transform

    @abstractmethod
    def _decode(self, outputs: dict[str, np.ndarray], transform: InputTransform) -> Detections:
        """Raw outputs of one image -> Detections in that image's pixels."""

    def prepare(self, image_bgr: np.ndarray) -> tuple[dict[str, np.ndarray], InputTransform]:
        """Pre-processing alone: the feeds for one image and the transform back to its pixels."""
        _check_image(image_bgr)
        return self._prepare(image_bgr)

    def decode(self, outputs: dict[str, np.ndarray], transform: InputTransform) -> Detections:
        """Post-processing alone: raw outputs of one image -> Detections in its pixels."""
        return self._decode(outputs, transform)

    def detections(
        self,
        xyxy: np.ndarray,
        scores: np.ndarray,
        class_ids: np.ndarray,
        attributes: dict[str, np.ndarray] | None = None,
    ) -> Detections:
        """Build Detections with labels from the model's label list."""
        ids = np.asarray(class_ids, np.int32).reshape(-1)
        names = [
            label_for(self.labels, int(c), self.label_offset) if self.labels else str(int(c)) for c in ids
        ]
        return Detections.create(xyxy, scores, ids, names, attributes=attributes)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        """Detections on one H x W x 3 uint8 BGR image, in its pixels."""
        _check_image(image_bgr)
        feeds, transform = self._prepare(image_bgr)
        return self._decode(self.backend.infer(feeds), transform)

    def detect_many(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detections for several images (pipelined/batched by the backend), in order."""
        for image in images:
            _check_image(image)
        transforms: list[InputTransform] = []

        def feeds() -> Iterator[dict[str, np.ndarray]]:  # prepared one by one, as requests free up
            for image in images:
                fed, transform = self._prepare(image)
                transforms.append(transform)
                yield fed

        outputs = self.backend.infer_many(feeds())
        return [self._decode(out, transform) for out, transform in zip(outputs, transforms, strict=True)]

    def close(self) -> None:
        self.backend.close()


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected an H x W x 3 uint8 BGR image, got {type(image).__name__} {shape}")
