"""The one currency between stages: `Frame` and its `Detections`.

`Detections` is a struct of numpy arrays (boxes xyxy in pixels of the frame's image, score,
class id, label, track id) plus named per-detection attributes (age, gender, emotion, ...).
Stages never invent their own box format: a detector returns `Detections`, a tracker fills
`track_id`, a classifier adds attributes.

Frames are treated as immutable once sent: stages return a new frame with `Frame.replace`
(or the helpers below) instead of changing one in place. Images that arrived over a link are
read-only numpy views of the message buffer, so an accidental in-place write fails loudly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

NO_TRACK = -1


class DetectionRecord(TypedDict):
    """One detection in the public JSONL schema (`Detections.to_records`)."""

    box: list[float]  # x1, y1, x2, y2 in pixels of the frame's image
    score: float
    label: str
    class_id: int
    track_id: int | None  # None: untracked
    attributes: dict[str, Any]  # name -> JSON value (numbers rounded to 4 decimals)


class _FrameRecordFields(TypedDict):
    source: str
    seq: int
    pts: float
    detections: list[DetectionRecord]


class FrameRecord(_FrameRecordFields, total=False):
    """One line of the public JSONL (`Frame.to_record`); the optional keys appear when set."""

    index: int  # frame number in the source, when it differs from seq
    file: str  # the image's file name, for frames from an image folder/glob
    events: list[dict[str, Any]]  # `Event.to_record()` of each event
    errors: list[str]
    predicted: bool  # true: no detector ran on this frame, the boxes are the tracker's predictions


def _as_array(values: Any, dtype: Any, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.size == 0:
        return np.zeros((0, *shape_tail), dtype=dtype)
    return arr.reshape((-1, *shape_tail))


def _object_array(values: Iterable[Any]) -> np.ndarray:
    values = list(values)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


@dataclass(frozen=True, eq=False)
class Detections:
    """N detections as parallel arrays.

    xyxy: float32 (N, 4) pixel corners; score: float32 (N,); class_id: int32 (N,);
    label: object (N,) of str; track_id: int64 (N,), -1 where untracked;
    attributes: name -> array of length N (numeric, or object for strings/dicts/None).
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    label: np.ndarray
    track_id: np.ndarray
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        for name in ("score", "class_id", "label", "track_id"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Detections.{name} has {len(getattr(self, name))} rows, xyxy has {n}")
        for name, values in self.attributes.items():
            if len(values) != n:
                raise ValueError(f"Detections attribute {name!r} has {len(values)} rows, xyxy has {n}")

    @classmethod
    def create(
        cls,
        xyxy: Any,
        score: Any = None,
        class_id: Any = None,
        label: Sequence[str] | None = None,
        track_id: Any = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Detections:
        """Build from anything array-like; missing columns get neutral defaults."""
        boxes = _as_array(xyxy, np.float32, (4,))
        n = len(boxes)
        scores = np.ones(n, np.float32) if score is None else _as_array(score, np.float32)
        ids = np.zeros(n, np.int32) if class_id is None else _as_array(class_id, np.int32)
        labels = _object_array([""] * n if label is None else [str(x) for x in label])
        tracks = np.full(n, NO_TRACK, np.int64) if track_id is None else _as_array(track_id, np.int64)
        attrs = {k: _coerce_attribute(v) for k, v in (attributes or {}).items()}
        return cls(boxes, scores, ids, labels, tracks, attrs)

    @classmethod
    def empty(cls) -> Detections:
        return cls.create(np.zeros((0, 4), np.float32))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Subset by boolean mask, index array or slice (always returns Detections)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index],
            self.score[index],
            self.class_id[index],
            self.label[index],
            self.track_id[index],
            {k: v[index] for k, v in self.attributes.items()},
        )

    def replace(self, **changes: Any) -> Detections:
        return dataclasses.replace(self, **changes)

    def with_attributes(self, **columns: Any) -> Detections:
        """A copy with attribute columns added or replaced (each of length N)."""
        attrs = dict(self.attributes)
        attrs.update({k: _coerce_attribute(v) for k, v in columns.items()})
        return dataclasses.replace(self, attributes=attrs)

    def with_track_ids(self, track_id: Any) -> Detections:
        return dataclasses.replace(self, track_id=_as_array(track_id, np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Detections | None]) -> Detections:
        """Stack several Detections (None parts are skipped); attributes missing in a part are None."""
        present = [p for p in parts if p is not None]
        nonempty = [p for p in present if len(p)]
        if len(nonempty) <= 1:  # empty parts carry no rows, so their missing attributes don't matter
            return nonempty[0] if nonempty else (present[0] if present else cls.empty())
        return cls(
            np.concatenate([p.xyxy for p in nonempty]),
            np.concatenate([p.score for p in nonempty]),
            np.concatenate([p.class_id for p in nonempty]),
            _object_array(x for p in nonempty for x in p.label),
            np.concatenate([p.track_id for p in nonempty]),
            _concat_attributes(nonempty),
        )

    @property
    def area(self) -> np.ndarray:
        w = np.clip(self.xyxy[:, 2] - self.xyxy[:, 0], 0, None)
        h = np.clip(self.xyxy[:, 3] - self.xyxy[:, 1], 0, None)
        return w * h

    def to_records(self, decimals: int = 2) -> list[DetectionRecord]:
        """The JSONL form: one dict per detection (public schema)."""
        records: list[DetectionRecord] = []
        for i in range(len(self)):
            attrs = {k: to_jsonable(v[i]) for k, v in self.attributes.items()}
            tid = int(self.track_id[i])
            records.append(
                {
                    "box": [round(float(x), decimals) for x in self.xyxy[i]],
                    "score": round(float(self.score[i]), 4),
                    "label": str(self.label[i]),
                    "class_id": int(self.class_id[i]),
                    "track_id": tid if tid != NO_TRACK else None,
                    "attributes": attrs,
                }
            )
        return records

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> Detections:
        names: list[str] = []
        for r in records:
            names += [k for k in r.get("attributes", {}) if k not in names]
        return cls.create(
            [r["box"] for r in records],
            [r.get("score", 1.0) for r in records],
            [r.get("class_id", 0) for r in records],
            [r.get("label", "") for r in records],
            [NO_TRACK if r.get("track_id") is None else r["track_id"] for r in records],
            {n: _object_array(r.get("attributes", {}).get(n) for r in records) for n in names},
        )


def _concat_attributes(parts: Sequence[Detections]) -> dict[str, np.ndarray]:
    """The attribute columns of stacked parts, in first-seen order."""
    names = dict.fromkeys(name for p in parts for name in p.attributes)
    lengths = [len(p) for p in parts]
    return {name: _concat_column([p.attributes.get(name) for p in parts], lengths) for name in names}


def _concat_column(columns: Sequence[np.ndarray | None], lengths: Sequence[int]) -> np.ndarray:
    """One attribute over several parts: numeric when every part has it numeric, else an object
    column with None for the rows of the parts that lack it."""
    numeric = [c for c in columns if c is not None and c.dtype != object]
    if len(numeric) == len(columns):
        return np.concatenate(numeric)
    merged: list[Any] = []
    for column, n in zip(columns, lengths, strict=True):
        merged += [None] * n if column is None else list(column)
    return _object_array(merged)


def _coerce_attribute(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    values = list(values)
    if values and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.float32)
    return _object_array(values)


def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays and nested containers -> plain JSON types (floats rounded)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return round(v, 4) if np.isfinite(v) else None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class Event:
    """Something that happened on a frame: a line crossing, a zone enter/exit, ..."""

    type: str
    stage: str
    track_id: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "stage": self.stage,
            "track_id": self.track_id,
            **to_jsonable(dict(self.data)),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Event:
        data = {k: v for k, v in record.items() if k not in ("type", "stage", "track_id")}
        return cls(record["type"], record.get("stage", ""), record.get("track_id"), data)


@dataclass(frozen=True)
class SourceInfo:
    """What a capture knows about its source, sent ahead of its first frame."""

    id: str
    uri: str
    kind: str  # file | images | camera | stream | synthetic
    fps: float
    width: int
    height: int
    frames: int | None = None  # total frames, when known (files, folders)
    live: bool = False


@dataclass(frozen=True, eq=False)
class Frame:
    """One image of one source and everything the stages found on it.

    seq: position in the stream emitted by the capture (0, 1, 2, ... per source);
    index: frame number in the source itself (differs from seq with `every: N`);
    pts: media time in seconds; wall: capture wall-clock time (time.time()).
    image: H x W x 3 uint8 BGR; annotated: the rendered picture, when a render stage ran.
    file: the image's file name when the source is an image folder or glob (else None).
    motion: (M, 4) float32 xyxy boxes of moving regions in pixels of `image` (empty: a still
    scene), or None when no motion stage ran (unknown: gated detectors then always run).
    predicted: a gated detector skipped this frame, so a tracker should predict its boxes.
    """

    source: str
    seq: int
    pts: float
    wall: float
    image: np.ndarray
    detections: Detections = field(default_factory=Detections.empty)
    events: tuple[Event, ...] = ()
    index: int = -1
    annotated: np.ndarray | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    file: str | None = None  # the image's file name (image folder/glob sources)
    motion: np.ndarray | None = None
    predicted: bool = False

    def replace(self, **changes: Any) -> Frame:
        return dataclasses.replace(self, **changes)

    def with_detections(self, detections: Detections) -> Frame:
        return dataclasses.replace(self, detections=detections)

    def add_events(self, events: Iterable[Event]) -> Frame:
        return dataclasses.replace(self, events=self.events + tuple(events))

    @property
    def view(self) -> np.ndarray:
        """The picture a sink should show: the rendered one if any, else the image."""
        return self.annotated if self.annotated is not None else self.image

    def to_record(self) -> FrameRecord:
        """The public JSONL line for this frame."""
        record: FrameRecord = {
            "source": self.source,
            "seq": self.seq,
            "pts": round(self.pts, 4),
            "detections": self.detections.to_records(),
        }
        if self.index >= 0:
            record["index"] = self.index
        if self.file is not None:
            record["file"] = self.file
        if self.events:
            record["events"] = [e.to_record() for e in self.events]
        if self.errors:
            record["errors"] = list(self.errors)
        if self.predicted:
            record["predicted"] = True
        return record
