"""Run a pipeline over a folder of labelled images and read the attributes of one face per image.

`run_attributes` is what `vigil eval attributes` does: the pipeline's detect and classify stages
run in-process (`pipeline.Pipeline`) on the image folder, each image on its own: tracker stages
(which would link faces across unrelated images and smooth one person's attributes into the
next), render and sink stages are left out. Images can be upscaled first (`upscale`, bicubic,
into a temporary folder): FER2013's 48x48 faces are too small for the face detectors.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.config import LinksConfig, PipelineConfig, SourceConfig, load_config
from pipeline.evaluation.attributes import (
    AttributeReport,
    FacePrediction,
    pick_face,
    read_labels,
    score_attributes,
)
from pipeline.frame import Frame

SKIPPED_KINDS = ("track.", "render", "sink.", "analytics.")  # per-image evaluation needs none of them
ATTRIBUTES = ("gender", "age", "emotion")


def image_config(config: PipelineConfig, folder: str | Path) -> PipelineConfig:
    """`config` reduced to its per-image stages, reading `folder` through lossless links.
    A stage fed by a left-out stage is fed by that stage's own parent."""
    parents: dict[str, str | None] = {}
    kept = []
    for i, stage in enumerate(config.stages):
        parent = config.parent_of(i)
        while parent is not None and parent in parents:
            parent = parents[parent]
        if stage.kind.startswith(SKIPPED_KINDS):
            parents[stage.id] = parent
            continue
        kept.append(stage.model_copy(update={"after": parent}))
    if not kept:
        raise ValueError("the pipeline has no detect/classify stage left to evaluate")
    return config.model_copy(
        update={
            "sources": [SourceConfig.model_validate({"id": "eval", "uri": str(folder)})],
            "stages": kept,
            "links": LinksConfig.model_validate({"policy": "lossless", "capacity": config.links.capacity}),
        }
    )


def upscale_folder(src: Path, dst: Path, factor: float, files: Sequence[str]) -> None:
    """Write each of `files` (names in `src`) to `dst`, resized by `factor` (bicubic)."""
    for name in files:
        image = cv2.imread(str(src / name))
        if image is None:
            continue
        size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
        cv2.imwrite(str(dst / name), cv2.resize(image, size, interpolation=cv2.INTER_CUBIC))


def _check_images(folder: Path, files: Sequence[str]) -> None:
    """Every labelled file must be in `folder`: a partial set would score a different test."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--images {folder}: no such folder")
    missing = [name for name in files if not (folder / name).is_file()]
    if not missing:
        return
    hint = ""
    inner = [p for p in sorted(folder.iterdir()) if p.is_dir() and (p / missing[0]).is_file()]
    if inner:
        hint = f"; they are in {inner[0]}: pass that folder"
    raise FileNotFoundError(
        f"--images {folder}: {len(missing)} of the {len(files)} labelled files are not there "
        f"(first: {', '.join(missing[:3])}){hint}"
    )


@dataclass
class _Collected:
    predictions: dict[str, FacePrediction] = field(default_factory=dict)
    emotion_classes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per classify stage
    faces: int = 0


def _value(detections: Any, name: str, row: int) -> Any:
    column = detections.attributes.get(name)
    return None if column is None else column[row]


def _read_frame(frame: Frame, classify_ids: set[str], rule: str, into: _Collected) -> None:
    """Add one result frame: the scored face's attributes, classification time, faces."""
    det = frame.detections
    for sid, t in frame.timings.items():
        if sid in classify_ids:
            into.seconds[sid] = into.seconds.get(sid, 0.0) + t
    present = [any(_value(det, a, r) is not None for a in ATTRIBUTES) for r in range(len(det))]
    into.faces += sum(present)
    h, w = frame.image.shape[:2]
    row = pick_face(det.xyxy, w, h, rule)
    name = frame.file or str(frame.seq)
    if row is None:
        into.predictions[name] = FacePrediction(name, False)
        return
    age = _value(det, "age", row)
    probs = _value(det, "emotion_probs", row)
    if isinstance(probs, dict):
        into.emotion_classes += [c for c in probs if c not in into.emotion_classes]
    into.predictions[name] = FacePrediction(
        name,
        True,
        gender=_value(det, "gender", row),
        age=None if age is None or not np.isfinite(float(age)) else float(age),
        emotion=_value(det, "emotion", row),
    )


def run_attributes(
    config_path: str | Path,
    images: str | Path,
    labels_csv: str | Path,
    overrides: Sequence[str] = (),
    *,
    face: str = "centre",
    upscale: float = 1.0,
) -> AttributeReport:
    """Run the pipeline file on the labelled images and score one face per image (`face`:
    centre | largest); `overrides` as `vigil run --set`."""
    from pipeline.api import Pipeline  # the engine's runner: imported when a run is asked for

    labels = read_labels(labels_csv)
    _check_images(Path(images), [lab.file for lab in labels])
    config = load_config(config_path, overrides)
    classify_ids = {s.id for s in config.stages if s.kind.startswith("classify.")}
    collected = _Collected()
    with tempfile.TemporaryDirectory(prefix="vigil-eval-") as tmp:
        folder = Path(images)
        if upscale != 1.0:
            upscale_folder(folder, Path(tmp), upscale, [lab.file for lab in labels])
            folder = Path(tmp)
        with Pipeline(image_config(config, folder), output_dir=Path(tmp) / "out") as run:
            for frame in run:
                _read_frame(frame, classify_ids, face, collected)
    return score_attributes(
        labels,
        collected.predictions,
        collected.emotion_classes,
        collected.seconds,
        collected.faces,
    )
