"""Face detector families: YuNet (any backend, or OpenCV's own FaceDetectorYN) and BlazeFace.

Landmarks go into the "landmarks" attribute as float32 (N, K, 2) image pixels: YuNet K = 5
(right eye, left eye, nose tip, right and left mouth corners), BlazeFace K = 6 (right eye,
left eye, nose, mouth, right ear, left ear).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import numpy as np

from models.blazeface import blazeface_anchors, decode_blazeface
from models.detectors import BackendDetector, Detector, DetectorInfo
from models.loader import Choice, LoadedModel
from models.preprocessing import InputTransform
from models.yunet import decode_yunet
from pipeline.errors import ModelError
from pipeline.frame import Detections


class YuNetDetector(BackendDetector):
    """YuNet on a generic backend: top-left zero letterbox, decode per stride, NMS."""

    def _decode(self, outputs: dict[str, np.ndarray], transform: InputTransform) -> Detections:
        xyxy, scores, points = decode_yunet(outputs, transform.input_size, self.conf, self.nms)
        return self.detections(
            transform.boxes_to_image(xyxy),
            scores,
            np.zeros(len(scores), np.int32),
            {"landmarks": transform.points_to_image(points).reshape(-1, 5, 2)},
        )


class BlazeFaceDetector(BackendDetector):
    """BlazeFace .tflite (MediaPipe): centred letterbox, RGB -1..1, anchors per variant, weighted NMS."""

    def __init__(self, loaded: LoadedModel, conf: float | None = None, nms: float | None = None) -> None:
        super().__init__(loaded, conf, nms)
        variant = loaded.resolved.entry.variant
        if variant is None or self.input_size is None:
            raise ModelError(
                f"model {loaded.resolved.name!r}: BlazeFace needs a catalog variant and input size"
            )
        self.anchors = blazeface_anchors(variant)

    def _decode(self, outputs: dict[str, np.ndarray], transform: InputTransform) -> Detections:
        xyxy, scores, points = decode_blazeface(
            self.output(outputs, 0),
            self.output(outputs, 1),
            self.anchors,
            transform.input_size[0],
            self.conf,
            self.nms,
        )
        return self.detections(
            transform.normalised_boxes_to_image(xyxy),
            scores,
            np.zeros(len(scores), np.int32),
            {"landmarks": transform.normalised_points_to_image(points).reshape(-1, 6, 2)},
        )


class YuNetOpenCvDetector(Detector):
    """YuNet through `cv2.FaceDetectorYN` (OpenCV's own pre/post-processing, any input size).

    `threads` calls cv2.setNumThreads, which is process-wide.
    """

    def __init__(
        self, choice: Choice, threads: int | None = None, conf: float | None = None, nms: float | None = None
    ) -> None:
        from models.backends.opencv_dnn import cuda_available

        self.choice = choice
        defaults = choice.resolved.format.defaults
        self.conf = defaults.conf if conf is None else float(conf)
        self.nms = defaults.nms if nms is None else float(nms)
        if threads is not None:
            cv2.setNumThreads(int(threads))
        cuda = cuda_available()
        backend_id = cv2.dnn.DNN_BACKEND_CUDA if cuda else cv2.dnn.DNN_BACKEND_OPENCV
        target_id = cv2.dnn.DNN_TARGET_CUDA if cuda else cv2.dnn.DNN_TARGET_CPU
        self._device = "CUDA" if cuda else "CPU"
        start = time.perf_counter()
        self._net: cv2.FaceDetectorYN | None
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(choice.resolved.path), "", (320, 320), self.conf, self.nms, 5000, backend_id, target_id
            )
        except cv2.error as exc:
            raise ModelError(
                f"cv2.FaceDetectorYN cannot load {choice.resolved.path}: {str(exc).strip().splitlines()[-1]}"
            ) from None
        self._load_seconds = time.perf_counter() - start
        self._size: tuple[int, int] | None = None
        self._threads = cv2.getNumThreads()

    @property
    def info(self) -> DetectorInfo:
        r = self.choice.resolved
        return DetectorInfo(
            r.name,
            r.entry.task,
            r.format.id,
            "opencv",
            f"opencv {cv2.__version__} FaceDetectorYN",
            self._device,
            "f32",
            self._threads,
            round(self._load_seconds, 3),
            str(r.path),
        )

    def detect(self, image_bgr: np.ndarray) -> Detections:
        if self._net is None:
            raise ModelError("YuNet (cv2.FaceDetectorYN) used after close()")
        h, w = image_bgr.shape[:2]
        if self._size != (w, h):
            self._net.setInputSize((w, h))  # OpenCV rebuilds the net for each new size
            self._size = (w, h)
        _, faces = self._net.detect(image_bgr)
        faces = np.zeros((0, 15), np.float32) if faces is None else np.asarray(faces, np.float32)
        xyxy = np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:4]], axis=1)
        xyxy = np.clip(xyxy, 0, np.array([w, h, w, h], np.float32))
        labels: Sequence[str] = self.choice.resolved.labels or ("face",)
        return Detections.create(
            xyxy,
            faces[:, 14],
            np.zeros(len(faces), np.int32),
            [labels[0]] * len(faces),
            attributes={"landmarks": faces[:, 4:14].reshape(-1, 5, 2)},
        )

    def close(self) -> None:
        self._net = None


FACE_DETECTORS: dict[str, type[BackendDetector]] = {"yunet": YuNetDetector, "blazeface": BlazeFaceDetector}
