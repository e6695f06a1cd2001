"""Face attributes scored against labelled images (`vigil eval attributes`): pure functions.

A labels CSV has a `file` column plus any of `gender` (female|male), `age` (years),
`age_min`/`age_max` (a bracket, `age_max` empty = open-ended), `emotion` or `label` (an emotion
class). `score_attributes` compares one `FacePrediction` per labelled image with its labels:

- gender accuracy over the images labelled with a gender (a missed face is wrong);
- age: mean absolute error in years against `age`, or against a bracket the distance outside
  [age_min, age_max + 1) (0 inside it), and the share of predictions inside the bracket; over the
  images whose face was found (misses are counted apart);
- emotion accuracy over every labelled image and over the images whose true class the model has
  (`emotion_classes`), with a confusion matrix (rows: truth, columns: prediction, `missed` last);
- faces missed and ms of classification per face.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

MISSED = "missed"  # the confusion-matrix column of images where no face was found


@dataclass(frozen=True)
class FaceLabel:
    """What a labelled image says about its face (None: not labelled)."""

    file: str  # the image's file name (no folder)
    gender: str | None = None
    age: float | None = None
    age_min: float | None = None
    age_max: float | None = None  # None with age_min set: open-ended bracket (70+)
    emotion: str | None = None


@dataclass(frozen=True)
class FacePrediction:
    """The attributes read on the scored face of one image (found=False: no face)."""

    file: str
    found: bool
    gender: str | None = None
    age: float | None = None
    emotion: str | None = None


def _number(text: str | None) -> float | None:
    text = (text or "").strip()
    return float(text) if text else None


def _word(text: str | None) -> str | None:
    text = (text or "").strip().lower()
    return text or None


def read_labels(path: str | PathLike[str]) -> list[FaceLabel]:
    """The labels CSV (see the module docstring); files are keyed by their name alone."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "file" not in rows[0]:
        raise ValueError(f"{path}: expected a CSV with a 'file' column and at least one row")
    return [
        FaceLabel(
            file=Path(r["file"]).name,
            gender=_word(r.get("gender")),
            age=_number(r.get("age")),
            age_min=_number(r.get("age_min")),
            age_max=_number(r.get("age_max")),
            emotion=_word(r.get("emotion") or r.get("label")),
        )
        for r in rows
    ]


def pick_face(xyxy: np.ndarray, width: int, height: int, rule: str = "centre") -> int | None:
    """Row of the face to score: box centre nearest the image centre (`centre`), or the
    largest box (`largest`); None without boxes. Ties go to the first row."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    if not len(boxes):
        return None
    if rule == "largest":
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return int(np.argmax(area))
    if rule != "centre":
        raise ValueError(f"unknown face rule {rule!r} (centre | largest)")
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return int(np.argmin(np.hypot(centres[:, 0] - width / 2, centres[:, 1] - height / 2)))


def age_error(label: FaceLabel, predicted: float) -> float | None:
    """Years off: |predicted - age|, or the distance outside [age_min, age_max + 1)."""
    if label.age is not None:
        return abs(predicted - label.age)
    if label.age_min is None:
        return None
    upper = math.inf if label.age_max is None else label.age_max + 1
    return max(0.0, label.age_min - predicted, predicted - upper)


@dataclass(frozen=True)
class AttributeReport:
    """Scores of one run over one labelled set (None: nothing labelled for that attribute)."""

    images: int
    missed: int
    faces_classified: int
    ms_per_face: Mapping[str, float]  # classify stage id -> ms per classified face
    gender_accuracy: float | None = None
    gender_n: int = 0
    age_mae: float | None = None  # against exact ages
    age_outside: float | None = None  # mean years outside the bracket
    age_in_bracket: float | None = None
    age_n: int = 0
    emotion_accuracy: float | None = None  # over every labelled image
    emotion_accuracy_known: float | None = None  # over the classes the model has
    emotion_n: int = 0
    emotion_n_known: int = 0
    emotion_classes: tuple[str, ...] = ()
    confusion: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    predictions: tuple[FacePrediction, ...] = ()  # per labelled image, in the labels' order

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["confusion"] = {k: dict(v) for k, v in self.confusion.items()}
        out["ms_per_face"] = dict(self.ms_per_face)
        out["predictions"] = [asdict(p) for p in self.predictions]
        return out

    def format(self) -> str:
        """A few human-readable lines."""

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}"

        lines = [f"images {self.images}, faces missed {self.missed}"]
        for stage, ms in self.ms_per_face.items():
            lines.append(f"ms per face {ms:.2f} in {stage} (crop, resize, inference)")
        if self.gender_n:
            lines.append(f"gender accuracy {pct(self.gender_accuracy)} (n={self.gender_n})")
        if self.age_mae is not None:
            lines.append(f"age MAE {self.age_mae:.2f} years (n={self.age_n})")
        if self.age_outside is not None:
            lines.append(
                f"age outside bracket {self.age_outside:.2f} years, inside {pct(self.age_in_bracket)} "
                f"(n={self.age_n})"
            )
        if self.emotion_n:
            lines.append(
                f"emotion accuracy {pct(self.emotion_accuracy)} (n={self.emotion_n}); on the model's "
                f"{len(self.emotion_classes)} classes {pct(self.emotion_accuracy_known)} (n={self.emotion_n_known})"
            )
            cols = [*sorted({c for row in self.confusion.values() for c in row} - {MISSED}), MISSED]
            lines.append("confusion (rows: truth) " + " ".join(f"{c[:7]:>7}" for c in cols))
            for truth, row in sorted(self.confusion.items()):
                lines.append(f"  {truth:>21} " + " ".join(f"{row.get(c, 0):>7}" for c in cols))
        return "\n".join(lines)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def score_attributes(
    labels: Sequence[FaceLabel],
    predictions: Mapping[str, FacePrediction],
    emotion_classes: Sequence[str] = (),
    classify_seconds: Mapping[str, float] | None = None,
    faces_classified: int = 0,
) -> AttributeReport:
    """Score `predictions` (by file name) against `labels`; an image without a prediction is a
    missed face. `classify_seconds` (stage id -> seconds) / `faces_classified` give ms per face."""
    missing = FacePrediction("", False)
    pairs = [(lab, predictions.get(lab.file, missing)) for lab in labels]
    genders = [p.gender == lab.gender for lab, p in pairs if lab.gender is not None]
    exact = [abs(p.age - lab.age) for lab, p in pairs if lab.age is not None and p.age is not None]
    outside = [
        float(age_error(lab, p.age) or 0.0)
        for lab, p in pairs
        if lab.age is None and lab.age_min is not None and p.age is not None
    ]
    emotions = [(lab.emotion, p.emotion if p.found else None) for lab, p in pairs if lab.emotion is not None]
    known = [(t, e) for t, e in emotions if t in emotion_classes]
    confusion: dict[str, dict[str, int]] = {}
    for truth, guess in emotions:
        row = confusion.setdefault(truth, {})
        row[guess or MISSED] = row.get(guess or MISSED, 0) + 1
    return AttributeReport(
        images=len(labels),
        missed=sum(not p.found for _, p in pairs),
        faces_classified=faces_classified,
        ms_per_face={
            k: 1000 * v / faces_classified for k, v in (classify_seconds or {}).items() if faces_classified
        },
        gender_accuracy=_mean([float(g) for g in genders]),
        gender_n=len(genders),
        age_mae=_mean(exact),
        age_outside=_mean(outside),
        age_in_bracket=_mean([float(e == 0) for e in outside]),
        age_n=len(exact) + len(outside),
        emotion_accuracy=_mean([float(t == e) for t, e in emotions]),
        emotion_accuracy_known=_mean([float(t == e) for t, e in known]),
        emotion_n=len(emotions),
        emotion_n_known=len(known),
        emotion_classes=tuple(emotion_classes),
        confusion=confusion,
        predictions=tuple(p if p.file else FacePrediction(lab.file, False) for lab, p in pairs),
    )
