"""`classify.emotion` and the shell of every crop classifier (`classify.age_gender` is in
stages.classify_age_gender, `classify.keras` in stages.classify_keras).

Each stage crops the wanted detections of every frame it is given (`labels`, `min_face`, a
margin clamped to the frame: stages.face_crops), runs ALL crops of those frames through the
model in one batched call, and writes one attribute schema whatever model ran:

- emotion: `emotion` (label), `emotion_score` (its probability) and `emotion_probs`
  (label -> probability over the canonical vocabulary angry, disgust, fear, happy, sad,
  surprise, neutral; classes a model lacks are omitted);
- age/gender: `age` (years), `gender` ("female" | "male"), `gender_score` (its probability).

Rows that are not classified (other labels, tiny or off-frame faces) get None. When a tracker
ran first, outputs are smoothed per (source, track_id) (stages.attribute_smoothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, TypeVar

import cv2
import numpy as np
from pydantic import Field, field_validator

from models.classifiers import Classifier, build_classifier
from pipeline.errors import ModelError
from pipeline.frame import Frame
from pipeline.stage import Options, Stage, StageContext, register
from stages.attribute_smoothing import Key, LastReadings, TrackSmoother
from stages.face_crops import CropBatch, merge_column, select_rows

CANONICAL_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
EMOTION_SYNONYMS = {
    "anger": "angry",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "fearful": "fear",
    "disgusted": "disgust",
    "calm": "neutral",
}


def canonical_emotions(labels: Sequence[str]) -> tuple[str, ...]:
    """A model's emotion labels in the canonical vocabulary (Intel's `anger` -> `angry`)."""
    names = tuple(EMOTION_SYNONYMS.get(str(x).lower(), str(x).lower()) for x in labels)
    unknown = [n for n in names if n not in CANONICAL_EMOTIONS]
    if unknown:
        raise ModelError(f"emotion labels {unknown} are not in the vocabulary {list(CANONICAL_EMOTIONS)}")
    return names


def mean_of_halves(raw: Any) -> Any:
    """Readings of 2N crops (N, then the same N mirrored) -> the N averaged readings, for any
    nesting of tuples, lists and dicts of arrays whose first axis runs over the crops."""
    if isinstance(raw, np.ndarray):
        n = len(raw) // 2
        return ((raw[:n].astype(np.float32) + raw[n:]) / 2).astype(raw.dtype, copy=False)
    if isinstance(raw, dict):
        return {k: mean_of_halves(v) for k, v in raw.items()}
    if isinstance(raw, (tuple, list)):
        return type(raw)(mean_of_halves(v) for v in raw)
    raise TypeError(f"cannot average readings of type {type(raw).__name__}")


def probs_dict(names: Sequence[str], probs: np.ndarray) -> dict[str, float]:
    """label -> probability, in canonical order, rounded to 4 decimals."""
    pairs = dict(zip(names, (round(float(p), 4) for p in probs), strict=True))
    return {n: pairs[n] for n in CANONICAL_EMOTIONS if n in pairs} or pairs


def load_classifier(
    model: str, backend: str, device: str, threads: int | None, precision: str | None = None
) -> Classifier:
    """A catalog classifier whose OpenVINO batch is dynamic: the catalog IRs have a static batch
    of 1, so N crops would otherwise run as N requests instead of one inference."""
    return build_classifier(model, backend, device, threads, precision=precision, batch=-1)


def default_crop(model: Classifier) -> tuple[float, bool]:
    """(margin, square) for a catalog model: its catalog `crop_margin` and `crop_square`, chosen
    per model by `vigil eval attributes` on the labelled faces (README, "Face attributes")."""
    return model.crop_margin, model.spec.crop_square


Backend = Literal["auto", "openvino", "tensorflow", "opencv"]


class ClassifyOptions(Options):
    """Options shared by the crop classifiers (sizes in pixels of the full frame; times in frames)."""

    model: str = Field("auto", description="which model (see the stage kind)")
    backend: Backend = Field(
        "auto",
        description="inference runtime; auto: OpenVINO where it runs, else TensorFlow/LiteRT "
        "(no catalog emotion/age/gender model has an OpenCV DNN format yet)",
    )
    device: str = Field("AUTO", description="CPU | GPU | NPU | AUTO (OpenVINO), cuda:0 (TensorFlow)")
    precision: str | None = Field(
        None, description="OpenVINO precision hint (f32, bf16, f16; default: the device's)"
    )
    min_face: float = Field(
        16, ge=0, description="skip boxes whose shorter side is below this many px (attributes None)"
    )
    margin: float | None = Field(
        None,
        ge=0,
        le=2,
        description="fraction of the box added on each side before cropping (default: the model's own)",
    )
    square: bool | None = Field(
        None, description="make the box square (its longer side) before the margin (default: the model's own)"
    )
    align: bool | None = Field(
        None,
        description="turn each crop so the eyes are level, from the detector's landmarks (YuNet); "
        "boxes without landmarks are cropped as they are (default: the model's own)",
    )
    flip: bool | None = Field(
        None,
        description="also classify each crop mirrored and average the two readings (test-time flip: "
        "twice the inference; default: the model's own)",
    )
    smoothing: bool = Field(
        True, description="smooth per (source, track_id) when a tracker ran before this stage"
    )
    window: int = Field(15, ge=1, le=1000, description="frames of evidence averaged per track")
    switch_margin: float = Field(
        0.15,
        ge=0,
        lt=1,
        description="a track's label changes only when the new top class "
        "beats it by this much in the window-averaged probabilities (0..1)",
    )
    forget_after: int = Field(
        30,
        ge=1,
        le=10_000,
        description="frames a track may go unseen before its smoothing state is dropped (at most 10000)",
    )
    every: int = Field(
        1,
        ge=1,
        le=1000,
        description="read a tracked face every N frames and repeat its last (smoothed) reading in "
        "between: 1/N of the inference; `window` then counts readings (1: every frame)",
    )


class FaceClassifyOptions(ClassifyOptions):
    """Options of the face attribute classifiers."""

    labels: list[str] | None = Field(
        ["face"], description="classify detections with these labels (null: every detection)"
    )


ClassifyT = TypeVar("ClassifyT", bound=ClassifyOptions)
FaceClassifyT = TypeVar("FaceClassifyT", bound=FaceClassifyOptions)


class CropClassifierStage(Stage[ClassifyT]):
    """Shared shell: gather crops of all frames, one batched inference, attributes, smoothing."""

    stateful: ClassVar[bool] = True  # per-track smoothing windows (harmless without a tracker)
    columns: tuple[str, ...] = ()  # attribute columns written (a stage may choose them per instance)

    @classmethod
    def is_stateful(cls, options: ClassifyT) -> bool:
        return options.smoothing or options.every > 1  # else frames are independent

    def __init__(self, options: ClassifyT, context: StageContext) -> None:
        super().__init__(options, context)
        self.smoother: TrackSmoother | None = None
        self.readings: LastReadings | None = None  # with `every` > 1
        self.models: list[Any] = []
        self.margin, self.square, self.align, self.flip = 0.0, False, False, False

    # -- hooks of a concrete stage
    def load(self) -> tuple[list[Classifier], tuple[float, bool]]:
        """Load the model(s); return them and the default crop (margin, square)."""
        raise NotImplementedError

    def infer(self, crops: list[np.ndarray]) -> Any:
        """Run the batch of BGR crops; returns whatever `attributes` reads."""
        raise NotImplementedError

    def attributes(self, raw: Any, k: int, key: Key | None, now: int) -> dict[str, Any]:
        """Attribute values of crop `k`, smoothed under `key` (None: per frame)."""
        raise NotImplementedError

    def top_class(self, key: Key | None, head: str, probs: np.ndarray, now: int) -> tuple[int, np.ndarray]:
        """(label index, probabilities): window-averaged under `key` when smoothing, else this frame's."""
        if key is not None and self.smoother is not None:
            return self.smoother.probabilities(key, head, probs, now)
        return int(np.argmax(probs)), probs

    @property
    def select_labels(self) -> list[str] | None:
        """Detection labels to classify (None: all)."""
        raise NotImplementedError

    # -- the shell
    def setup(self) -> None:
        models, (margin, square) = self.load()
        self.models = models
        o = self.options
        self.margin = margin if o.margin is None else o.margin
        self.square = square if o.square is None else o.square
        spec = getattr(models[0], "spec", None)
        self.align = bool(getattr(spec, "crop_align", False)) if o.align is None else o.align
        self.flip = bool(getattr(spec, "crop_flip", False)) if o.flip is None else o.flip
        # a track read every N frames is seen by the smoother every N frames: keep it that long
        keep = max(o.forget_after, o.every)
        self.smoother = TrackSmoother(o.window, o.switch_margin, keep) if o.smoothing else None
        self.readings = LastReadings(o.every, o.forget_after) if o.every > 1 else None
        self.context.report["models"] = [m.info.as_dict() for m in models]
        for m in models:
            i = m.info
            self.log.info(
                "%s on %s/%s (%s); crops: margin %.2f%s%s",
                i.model,
                i.backend,
                i.device,
                i.precision,
                self.margin,
                ", square" if self.square else "",
                ", eyes levelled" if self.align else "",
            )
            if self.flip:
                self.log.info("%s: each crop also read mirrored, the two readings averaged", i.model)

    def gather(self, frames: Sequence[Frame]) -> CropBatch:
        """The crops to classify in these frames."""
        batch = CropBatch()
        planned: dict[Key, int] = {}  # reads planned in this batch: later frames of it count them
        for i, frame in enumerate(frames):
            rows = select_rows(frame.detections, self.select_labels, self.options.min_face)
            if self.readings is not None:
                due = self._due(frame, rows, planned)
                batch.reused += [(i, int(r)) for r in rows[~due]]
                rows = rows[due]
            cropped = batch.add(i, frame.image, frame.detections, rows, self.margin, self.square, self.align)
            if self.readings is not None:  # only a crop is a reading (an off-frame box gives none)
                for t in frame.detections.track_id[cropped].tolist():
                    if t >= 0:
                        planned[(frame.source, t)] = frame.seq
        return batch

    def _due(self, frame: Frame, rows: np.ndarray, planned: dict[Key, int]) -> np.ndarray:
        """Which rows must be read on this frame: untracked ones, and tracks due a reading
        (counting the readings planned on earlier frames of the batch)."""
        assert self.readings is not None
        due = np.ones(len(rows), bool)
        for j, t in enumerate(frame.detections.track_id[rows].tolist()):
            if t >= 0:
                last = planned.get((frame.source, t))
                if last is None:
                    due[j] = self.readings.due((frame.source, t), frame.seq)
                else:
                    due[j] = frame.seq - last >= self.readings.every
        return due

    def process(self, frame: Frame) -> Frame | None:
        return self.process_batch([frame])[0]

    def process_batch(self, frames: list[Frame]) -> list[Frame | None]:
        if not self.models:
            self.setup()
        batch = self.gather(frames)
        raw = None
        if len(batch) and self.flip:
            raw = mean_of_halves(self.infer(batch.crops + [cv2.flip(c, 1) for c in batch.crops]))
        elif len(batch):
            raw = self.infer(batch.crops)
        return [
            self._annotate(f, pairs, raw)
            for f, pairs in zip(frames, batch.per_frame(len(frames)), strict=True)
        ]

    def _annotate(self, frame: Frame, pairs: list[tuple[int, int]], raw: Any) -> Frame:
        if self.smoother is not None:
            self.smoother.advance(frame.source, frame.seq)
        if self.readings is not None:
            self.readings.advance(frame.source, frame.seq)
        det = frame.detections
        if not len(det):
            return frame
        rows, values = [], []
        for k, row in pairs:
            tid = int(det.track_id[row])
            track = (frame.source, tid) if tid >= 0 else None
            if k < 0:  # this track's last reading, repeated
                assert self.readings is not None and track is not None
                reading = self.readings.reuse(track, frame.seq)
                if reading is None:
                    continue
            else:
                reading = self.attributes(raw, k, track if self.smoother is not None else None, frame.seq)
                if self.readings is not None and track is not None:
                    self.readings.put(track, frame.seq, reading)
            rows.append(row)
            values.append(reading)
        columns = {
            c: merge_column(det.attributes.get(c), len(det), rows, [v[c] for v in values])
            for c in self.columns
        }
        return frame.with_detections(det.with_attributes(**columns))

    def end_stream(self, source: str) -> list[Frame]:
        if self.smoother is not None:
            self.smoother.end_source(source)
        if self.readings is not None:
            self.readings.end_source(source)
        return []

    def close(self) -> None:
        for m in self.models:
            m.close()
        self.models = []


class FaceClassifierStage(CropClassifierStage[FaceClassifyT]):
    """Shell of the face attribute classifiers: crops of the detections labelled `labels`."""

    @property
    def select_labels(self) -> list[str] | None:
        return self.options.labels


class EmotionOptions(FaceClassifyOptions):
    """Options of `classify.emotion`."""

    model: str = Field(
        "auto",
        description="emotions-recognition-retail-0003 (Intel, 5 classes, OpenVINO), "
        "fer2013-mini-xception (7 classes; Keras .hdf5 on TensorFlow, IR/TFLite on OpenVINO), "
        "fer2013-mini-xception-quant; auto: the Intel model, or FER when backend is tensorflow",
    )

    @field_validator("model")
    @classmethod
    def _emotion_model(cls, value: str) -> str:
        if value == "auto":
            return value
        from models.catalog import load_catalog

        entry = load_catalog().find(value)
        if entry is None or entry.task != "emotion":
            known = [m.name for m in load_catalog().models if m.task == "emotion"]
            raise ValueError(f"{value!r} is not an emotion model of the catalog (known: {', '.join(known)})")
        return entry.name


@register("classify.emotion")
class EmotionClassifier(FaceClassifierStage[EmotionOptions]):
    """Emotion of each face: `emotion`, `emotion_score`, `emotion_probs` (canonical 7-class vocabulary)."""

    columns = ("emotion", "emotion_score", "emotion_probs")

    def load(self) -> tuple[list[Classifier], tuple[float, bool]]:
        o = self.options
        name = o.model
        if name == "auto":
            name = (
                "fer2013-mini-xception" if o.backend == "tensorflow" else "emotions-recognition-retail-0003"
            )
        model = load_classifier(name, o.backend, o.device, self.context.threads, o.precision)
        if not model.labels:
            raise ModelError(f"classify.emotion: {name!r} has no class labels in the catalog")
        self.names = canonical_emotions(model.labels)
        return [model], default_crop(model)

    def infer(self, crops: list[np.ndarray]) -> np.ndarray:
        return next(iter(self.models[0].classify_outputs(crops).values()))

    def attributes(self, raw: np.ndarray, k: int, key: Key | None, now: int) -> dict[str, Any]:
        label, probs = self.top_class(key, "emotion", raw[k], now)
        return {
            "emotion": self.names[label],
            "emotion_score": round(float(probs[label]), 4),
            "emotion_probs": probs_dict(self.names, probs),
        }
