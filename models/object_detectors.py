"""Object and person detector families: YOLOX / YOLO, TF OD API SSDs, raw-anchor SSD, OMZ SSD.

Each class only maps raw outputs to boxes; preprocessing comes from the catalog `InputSpec`
(models.preprocessing), decoding from models.yolo / models.ssd.
"""

from __future__ import annotations

import numpy as np

from models.detectors import BackendDetector
from models.loader import LoadedModel
from models.preprocessing import InputTransform
from models.ssd import decode_detection_output, decode_ssd_anchors, decode_tfod, dequantize
from models.yolo import decode_yolo, decode_yolox
from pipeline.errors import ModelError
from pipeline.frame import Detections


class YoloxDetector(BackendDetector):
    """YOLOX raw head (ONNX NCHW or SavedModel NHWC): BGR 0..255, top-left letterbox 114."""

    def _decode(self, outputs: dict[str, np.ndarray], transform: InputTransform) -> Detections:
        xyxy, scores, ids = decode_yolox(self.output(outputs, 0), transform.input_size, self.conf, self.nms)
        return self.detections(transform.boxes_to_image(xyxy), scores, ids)


class YoloDetector(BackendDetector):
    """A user's YOLO file: layout (yolox, yolov5, yolov8) detected from the output by decode_yolo."""

    def __init__(
        self, loaded: LoadedModel, conf: float | None = None, nms: float | None = None, layout: str = "auto"
    ) -> None:
        super().__init__(loaded, conf if conf is not None else 0.25, nms if nms is not None else 0.45)
        if self.input_size is None:
            raise ModelError(
                f"model {loaded.resolved.path}: the input size is dynamic; give an `input` spec with a size"
            )
        self.layout = layout

    def _decode(self, outputs: dict[str, np.ndarray], transform: InputTransform) -> Detections:
        xyxy, scores, ids = decode_yolo(
            self.output(outputs, 0), transform.input_size, self.conf, self.nms, layout=self.layout
        )
        return self.detections(transform.boxes_to_image(xyxy), scores, ids)


class TfodDetector(BackendDetector):
    """Post-processed SSD outputs in catalog order boxes, classes, scores, count (TFLite detect, TF OD graphs)."""

    def _decode(self, outputs: dict[str, np.ndarray], transform: InputTransform) -> Detections:
        boxes, classes, scores, count = (self.output(outputs, i) for i in range(4))
        xyxy, score, ids = decode_tfod(boxes, scores, classes, count, conf=self.conf)
        return self.detections(transform.normalised_boxes_to_image(xyxy), score, ids)


class SsdAnchorDetector(BackendDetector):
    """SSD without its post-process op: uint8 box encodings + scores, decoded against the anchors file."""

    def __init__(self, loaded: LoadedModel, conf: float | None = None, nms: float | None = None) -> None:
        super().__init__(loaded, conf, nms)
        anchors = loaded.resolved.file_path("anchors")
        if anchors is None:
            raise ModelError(
                f"model {loaded.resolved.name!r} ({loaded.resolved.format.id}) lists no anchors file"
            )
        self.anchors = np.load(anchors).astype(np.float32)
        self.dequant = [o.dequantize for o in loaded.resolved.format.outputs]

    def _float(self, outputs: dict[str, np.ndarray], index: int) -> np.ndarray:
        raw = self.output(outputs, index)
        params = self.dequant[index] if index < len(self.dequant) else None
        return (
            dequantize(raw, *params)
            if params and raw.dtype in (np.uint8, np.int8)
            else raw.astype(np.float32)
        )

    def _decode(self, outputs: dict[str, np.ndarray], transform: InputTransform) -> Detections:
        xyxy, scores, ids = decode_ssd_anchors(
            self._float(outputs, 0), self._float(outputs, 1), self.anchors, self.conf, self.nms
        )
        return self.detections(transform.normalised_boxes_to_image(xyxy), scores, ids)


class DetectionOutputDetector(BackendDetector):
    """OpenVINO/Caffe DetectionOutput [1, 1, N, 7] (Intel OMZ detectors)."""

    def _decode(self, outputs: dict[str, np.ndarray], transform: InputTransform) -> Detections:
        xyxy, scores, ids = decode_detection_output(self.output(outputs, 0), conf=self.conf)
        return self.detections(transform.normalised_boxes_to_image(xyxy), scores, ids)


OBJECT_DETECTORS: dict[str, type[BackendDetector]] = {
    "yolox": YoloxDetector,
    "yolo": YoloDetector,
    "tfod": TfodDetector,
    "ssd_anchors": SsdAnchorDetector,
    "detection_output": DetectionOutputDetector,
}
