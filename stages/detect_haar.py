"""`detect.haar`: OpenCV Haar cascade detector (faces by default).

Fast on small CPUs and needs no model download (the cascades ship inside the OpenCV 4 wheels),
but much weaker than the DNN detectors on turned, tilted or small faces. Haar gives no
calibrated confidence, so every box gets score 1.0.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

from models.nms import nms
from pipeline.errors import ModelError
from pipeline.frame import Detections, Frame
from pipeline.stage import StageContext, register
from stages.gated_detector import GatedDetectorStage, GatedOptions

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


def haarcascades_dir() -> Path | None:
    """The folder of cascades shipped with OpenCV, or None (OpenCV 5 wheels dropped them)."""
    data = getattr(cv2, "data", None)
    folder = getattr(data, "haarcascades", None)
    return Path(folder) if folder else None


def resolve_cascade(name: str) -> Path:
    """A cascade file from a path or a file name in OpenCV's cascade folder.

    Raises ModelError naming what was looked for and where.
    """
    given = Path(name).expanduser()
    if given.is_file():
        return given
    folder = haarcascades_dir()
    candidates = [name] if name.endswith(".xml") else [name, f"{name}.xml"]
    if folder is not None and given.name == name:  # a bare file name, not a path
        for candidate in candidates:
            if (folder / candidate).is_file():
                return folder / candidate
    where = f"as a path (from {Path.cwd()})"
    hint = ""
    if folder is not None:
        where += f" and in OpenCV's cascade folder {folder}"
        known = sorted(p.name for p in folder.glob("*.xml"))
        close = difflib.get_close_matches(given.name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; available: {', '.join(known)}"
    else:
        where += " (this OpenCV build ships no cascades: install opencv-python-headless<5)"
    raise ModelError(f"Haar cascade {name!r} not found: looked {where}{hint}")


class HaarOptions(GatedOptions):
    """Options of `detect.haar`. Sizes are in pixels of the full frame."""

    cascade: str = Field(
        DEFAULT_CASCADE,
        description="cascade file: a name from OpenCV's cv2.data.haarcascades folder "
        "(e.g. haarcascade_frontalface_alt2.xml, haarcascade_fullbody.xml) or a path to an .xml file",
    )
    scale_factor: float = Field(
        1.1, description="image pyramid step, must be > 1 (1.05 finds more but is slower, 1.3 is faster)"
    )
    min_neighbors: int = Field(
        5, ge=0, description="overlapping raw hits needed to keep a box (higher = fewer false positives)"
    )
    min_size: tuple[int, int] = Field(
        (0, 0), description="smallest box [w, h] in px; [0, 0] = the cascade's window (24x24 for faces)"
    )
    max_size: tuple[int, int] = Field((0, 0), description="largest box [w, h] in px; [0, 0] = no limit")
    downscale: float = Field(
        1.0,
        gt=0,
        le=1,
        description="detect on the frame resized by this factor (0 < f <= 1) for speed; "
        "boxes are mapped back to full-frame pixels",
    )
    equalize: bool = Field(False, description="histogram-equalise the grayscale image before detecting")
    overlap: float | None = Field(
        0.3,
        gt=0,
        le=1,
        description="drop a box overlapping a stronger one (cascade level weight) by more than this IoU; "
        "null keeps every box OpenCV's grouping left",
    )
    label: str = Field("face", description="label given to every detection")
    class_id: int = Field(0, ge=0, description="class id given to every detection")

    @field_validator("scale_factor")
    @classmethod
    def _scale_above_one(cls, value: float) -> float:
        if not value > 1:
            raise ValueError("must be > 1")
        return value

    @field_validator("min_size", "max_size")
    @classmethod
    def _size_not_negative(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 0:
            raise ValueError("sizes must be >= 0 px")
        return value

    @model_validator(mode="after")
    def _min_below_max(self) -> HaarOptions:
        if all(self.max_size) and (
            self.min_size[0] > self.max_size[0] or self.min_size[1] > self.max_size[1]
        ):
            raise ValueError(f"min_size {list(self.min_size)} is larger than max_size {list(self.max_size)}")
        return self


def _scaled_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    if not any(size):
        return (0, 0)
    return (max(1, round(size[0] * factor)), max(1, round(size[1] * factor)))


@register("detect.haar")
class HaarDetector(GatedDetectorStage[HaarOptions]):
    """Haar cascade detector: adds one detection per box found (score 1.0) to the frame's detections.

    One cv2.CascadeClassifier per stage instance (it is not safe to share across threads).
    """

    def __init__(self, options: HaarOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self._cascade: cv2.CascadeClassifier | None = None

    def setup(self) -> None:
        path = resolve_cascade(self.options.cascade)
        try:
            cascade = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError):  # a malformed XML raises inside the constructor
            cascade = None
        if cascade is None or cascade.empty():
            raise ModelError(f"Haar cascade {path} could not be loaded (not an OpenCV cascade XML?)")
        self._cascade = cascade
        self.log.info("Haar cascade %s", path.name)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Boxes (N, 4) float32 xyxy in pixels of `image`."""
        if self._cascade is None:
            self.setup()
        assert self._cascade is not None
        opts = self.options
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        factor = opts.downscale
        if factor < 1:
            gray = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        if opts.equalize:
            gray = cv2.equalizeHist(gray)
        found, _, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=opts.scale_factor,
            minNeighbors=opts.min_neighbors,
            minSize=_scaled_size(opts.min_size, factor),
            maxSize=_scaled_size(opts.max_size, factor),
            outputRejectLevels=True,  # gives each box's level weight, to rank overlapping boxes
        )
        if len(found) == 0:
            return np.zeros((0, 4), np.float32)
        xywh = np.asarray(found, np.float32) / factor
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        h, w = image.shape[:2]
        np.clip(xyxy, 0, [w, h, w, h], out=xyxy)
        if opts.overlap is not None and len(xyxy) > 1:
            # A face often also yields a box on the mouth and chin; the real one has the larger weight.
            xyxy = xyxy[nms(xyxy, np.asarray(weights, np.float32).reshape(-1), opts.overlap)]
        # OpenCV's parallel scan returns faces in thread-dependent order; sort so runs repeat exactly.
        return xyxy[np.lexsort((xyxy[:, 1], xyxy[:, 0]))]

    def _find(self, frames: list[Frame]) -> list[Detections]:
        o = self.options
        boxes = [self.detect(f.image) for f in frames]
        return [Detections.create(b, class_id=[o.class_id] * len(b), label=[o.label] * len(b)) for b in boxes]

    def close(self) -> None:
        self._cascade = None
