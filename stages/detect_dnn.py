"""DNN detectors as stages: `detect.ssd`, `detect.yolo`, `detect.face`.

Thin shells over `models.detector_factory.build_detector`: the stage picks the model, backend and
device from its options, keeps the detections of the wanted classes inside an optional
region of interest, and appends them to the frame's detections. Several waiting frames are
detected together (`batch:` on the stage) through the backend's async/batched path.
The run summary lists which backend, device and precision actually ran the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import Field, field_validator

from pipeline.errors import ConfigError
from pipeline.frame import Detections, Frame
from pipeline.stage import StageContext, register
from stages.gated_detector import GatedDetectorStage, GatedOptions

if TYPE_CHECKING:
    from models.detectors import Detector


class DetectOptions(GatedOptions):
    """Options shared by the DNN detectors (sizes in pixels of the full frame)."""

    model: str = Field(description="catalog name (see `vigil models list`) or a path to your own model file")
    labels: str | None = Field(None, description="labels file for your own model (one name per line)")
    backend: Literal["auto", "openvino", "tensorflow", "opencv"] = Field(
        "auto",
        description="inference runtime; auto: OpenVINO on Intel, TensorFlow with an NVIDIA GPU, else the best CPU path",
    )
    device: str = Field("AUTO", description="CPU | GPU | NPU | AUTO (OpenVINO), cuda:0 (TensorFlow/OpenCV)")
    threshold: float | None = Field(None, ge=0, le=1, description="minimum score (default: the model's own)")
    nms: float | None = Field(
        None, gt=0, le=1, description="IoU above which overlapping boxes are merged (default: the model's)"
    )
    classes: list[str | int] | None = Field(
        None, description="keep only these class names or ids (default: all)"
    )
    roi: list[float] | None = Field(
        None,
        description="[x1, y1, x2, y2] region to keep detections in; pixels, "
        "or fractions of the frame when all are <= 1",
    )
    min_size: int = Field(0, ge=0, description="drop boxes whose shorter side is below this many pixels")
    mode: Literal["latency", "throughput"] = Field("latency", description="OpenVINO performance hint")
    precision: str | None = Field(
        None, description="inference precision hint (f32, f16, bf16; default: the device's)"
    )
    layout: Literal["auto", "yolox", "yolov5", "yolov8"] = Field(
        "auto", description="output layout of your own YOLO file"
    )

    @field_validator("roi")
    @classmethod
    def _roi(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 4 or v[2] <= v[0] or v[3] <= v[1]):
            raise ValueError("must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1")
        return v


DetectT = TypeVar("DetectT", bound=DetectOptions)


class _DetectStage(GatedDetectorStage[DetectT]):
    """Shared body of the DNN detector stages."""

    families: ClassVar[tuple[str, ...]] = ()
    family_name: ClassVar[str] = ""

    def __init__(self, options: DetectT, context: StageContext) -> None:
        super().__init__(options, context)
        self.detector: Detector | None = None

    def setup(self) -> None:
        from models.detector_factory import open_detector
        from models.loader import choose

        opts = self.options
        choice = choose(opts.model, opts.backend, labels=opts.labels)  # resolved (and verified) once
        decoder = choice.resolved.format.decoder
        if decoder not in self.families:
            raise ConfigError(
                f"{self.kind}: model {opts.model!r} is a {decoder} model, not a {self.family_name} "
                f"detector; use the matching detect.* kind"
            )
        self.detector = open_detector(
            choice,
            opts.device,
            self.context.threads,
            opts.threshold,
            opts.nms,
            mode=opts.mode,
            precision=opts.precision,
            layout=opts.layout,
        )
        info = self.detector.info.as_dict()
        self.context.report["models"] = [info]
        self.log.info("%s on %s/%s (%s)", info["model"], info["backend"], info["device"], info["precision"])

    def _keep(self, det: Detections, shape: tuple[int, ...]) -> Detections:
        opts = self.options
        keep = np.ones(len(det), bool)
        if opts.classes is not None:
            names = {str(c) for c in opts.classes}
            keep &= np.array(
                [
                    str(lab) in names or str(cid) in names
                    for lab, cid in zip(det.label, det.class_id, strict=True)
                ],
                bool,
            )
        if opts.roi is not None:
            h, w = shape[:2]
            x1, y1, x2, y2 = opts.roi
            if max(opts.roi) <= 1:
                x1, y1, x2, y2 = x1 * w, y1 * h, x2 * w, y2 * h
            cx = (det.xyxy[:, 0] + det.xyxy[:, 2]) / 2
            cy = (det.xyxy[:, 1] + det.xyxy[:, 3]) / 2
            keep &= (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
        if opts.min_size:
            sides = np.minimum(det.xyxy[:, 2] - det.xyxy[:, 0], det.xyxy[:, 3] - det.xyxy[:, 1])
            keep &= sides >= opts.min_size
        return det if keep.all() else det[keep]

    def _detector(self) -> Detector:
        if self.detector is None:
            self.setup()
        assert self.detector is not None  # setup() sets it or raises
        return self.detector

    def _find(self, frames: list[Frame]) -> list[Detections]:
        if len(frames) == 1:
            results = [self._detector().detect(frames[0].image)]
        else:
            results = self._detector().detect_many([f.image for f in frames])
        return [self._keep(d, f.image.shape) for f, d in zip(frames, results, strict=True)]

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()
            self.detector = None


class SsdOptions(DetectOptions):
    """Options of `detect.ssd`."""

    model: str = Field(
        "ssd-mobilenet-v1-coco",
        description="ssd-mobilenet-v1-coco | pedestrian-ssdlite | "
        "person-detection-retail-0013 | a TF Object Detection API file",
    )


class YoloOptions(DetectOptions):
    """Options of `detect.yolo`."""

    model: str = Field(
        "yolox-nano", description="yolox-nano, or your own YOLOX/YOLOv5/YOLOv8 ONNX file + labels"
    )


class FaceOptions(DetectOptions):
    """Options of `detect.face`."""

    model: str = Field(
        "yunet", description="yunet | blazeface-short-range | blazeface-full-range | blazeface-back"
    )


@register("detect.ssd")
class SsdDetect(_DetectStage[SsdOptions]):
    """SSD detectors (TF Object Detection API, OpenVINO DetectionOutput, anchor SSD) for objects or people."""

    families = ("tfod", "ssd_anchors", "detection_output")
    family_name = "SSD"


@register("detect.yolo")
class YoloDetect(_DetectStage[YoloOptions]):
    """YOLO detectors: YOLOX (catalog), or your own YOLOX/YOLOv5/YOLOv8 ONNX export with a labels file."""

    families = ("yolox", "yolo")
    family_name = "YOLO"


@register("detect.face")
class FaceDetect(_DetectStage[FaceOptions]):
    """DNN face detectors (YuNet, BlazeFace) with landmarks in the `landmarks` attribute."""

    families = ("yunet", "blazeface")
    family_name = "face"
