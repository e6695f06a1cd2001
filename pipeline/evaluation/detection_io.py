"""Loading detection ground truth and predictions for `vigil eval detect`: COCO JSON (with crowd
regions), COCO results lists, and vigil JSONL, keyed by (source, seq) or, for predictions made
from a COCO image folder, by the COCO image id of each record's `file`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from models.geometry import xywh_to_xyxy
from pipeline.evaluation.detection import DetectionReport, DetectionSet, ImageKey, evaluate_detections
from pipeline.evaluation.records import read_frame_records, read_image_records
from pipeline.frame import Detections


def _group(records: Iterable[tuple[ImageKey, dict[str, Any]]], keys: Iterable[ImageKey]) -> DetectionSet:
    """(image key, record) pairs -> DetectionSet; every key in `keys` gets an entry."""
    grouped: dict[ImageKey, list[dict[str, Any]]] = {k: [] for k in keys}
    for key, record in records:
        grouped.setdefault(key, []).append(record)
    return DetectionSet({k: Detections.from_records(v) for k, v in grouped.items()})


def load_coco(
    gt_json: str | PathLike[str], pred_json: str | PathLike[str] | None = None
) -> tuple[DetectionSet, DetectionSet]:
    """Load a COCO ground-truth file (and optionally a COCO results file) as `DetectionSet`s.

    gt_json: {"images": [{"id"}...], "annotations": [{"image_id", "category_id", "bbox": [x, y,
    w, h], "iscrowd"}...], "categories": [{"id", "name"}...]}; every listed image is evaluated.
    pred_json: a results list [{"image_id", "category_id", "bbox", "score"}...]. Keys are the image
    ids; labels are the category names (ids without a name keep `str(id)`). Crowd annotations
    (iscrowd=1) keep that flag as an `iscrowd` attribute: `evaluate_detections` ignores
    detections on them, as pycocotools does. Without pred_json the second set is empty.
    """
    coco = json.loads(Path(gt_json).read_text(encoding="utf-8"))
    names = {c["id"]: str(c["name"]) for c in coco.get("categories", [])}

    def records(anns: Iterable[dict[str, Any]]) -> Iterable[tuple[ImageKey, dict[str, Any]]]:
        for a in anns:
            box = xywh_to_xyxy(a["bbox"])[0].tolist()
            cat = a["category_id"]
            yield (
                a["image_id"],
                {
                    "box": box,
                    "score": a.get("score", 1.0),
                    "class_id": cat,
                    "label": names.get(cat, str(cat)),
                    "attributes": {"iscrowd": int(a.get("iscrowd", 0))},
                },
            )

    image_ids = [im["id"] for im in coco["images"]]
    gt = _group(records(coco["annotations"]), image_ids)
    preds = json.loads(Path(pred_json).read_text(encoding="utf-8")) if pred_json is not None else []
    return gt, _group(records(preds), ())


def load_jsonl(path: str | PathLike[str]) -> DetectionSet:
    """Load vigil's JSONL results (`sink.jsonl`) as a `DetectionSet` keyed by (source, seq).

    Each line: {"source", "seq", "pts", "detections": [{"box": [x1, y1, x2, y2], "score", "label",
    "class_id", "track_id", "attributes"}...]}. Every line is an image (with no detections, an
    empty one), so a hand-labelled JSONL works as ground truth. A detection without a label is
    named `str(class_id)`. A repeated (source, seq) adds to that image.
    """
    pairs: list[tuple[ImageKey, dict[str, Any]]] = []
    keys: list[ImageKey] = []
    for source, seq, detections in read_frame_records(path):
        key = (source, seq)
        keys.append(key)
        for det in detections:
            pairs.append((key, {**det, "label": det.get("label") or str(det.get("class_id", 0))}))
    return _group(pairs, keys)


def load_jsonl_by_file(path: str | PathLike[str], image_ids: Mapping[str, ImageKey]) -> DetectionSet:
    """vigil JSONL made from an image folder (`vigil run` on COCO images), keyed by the COCO
    image id of each record's `file` (`image_ids`: file name -> id). A record without `file`,
    or naming an image the ground truth does not list, is a ValueError."""
    pairs: list[tuple[ImageKey, dict[str, Any]]] = []
    for name, detections in read_image_records(path):
        if name is None:
            raise ValueError(
                f"{path}: a record has no `file`: match by file name needs predictions "
                "made from an image folder"
            )
        if name not in image_ids:
            raise ValueError(f"{path}: {name!r} is not an image of the ground truth")
        key = image_ids[name]
        pairs += [
            (key, {**det, "label": det.get("label") or str(det.get("class_id", 0))}) for det in detections
        ]
    return _group(pairs, ())


def coco_file_names(gt_json: str | PathLike[str]) -> dict[str, ImageKey]:
    """file name (no folder) -> image id of a COCO ground-truth file."""
    coco = json.loads(Path(gt_json).read_text(encoding="utf-8"))
    return {Path(str(im["file_name"])).name: im["id"] for im in coco["images"] if "file_name" in im}


def evaluate_paths(
    gt_path: str | PathLike[str], pred_path: str | PathLike[str], **options: Any
) -> DetectionReport:
    """`vigil eval detect`: load both files by suffix and run `evaluate_detections(**options)`.

    `.jsonl` is vigil JSONL (`load_jsonl`), anything else COCO JSON (`load_coco`: ground truth,
    then a results list). COCO ground truth with vigil JSONL predictions made from its image
    folder matches images by file name (`load_jsonl_by_file`); JSONL ground truth needs JSONL
    predictions.
    """
    jsonl = [Path(p).suffix.lower() == ".jsonl" for p in (gt_path, pred_path)]
    if jsonl[0] and not jsonl[1]:
        raise ValueError("vigil JSONL ground truth needs vigil JSONL predictions")
    if jsonl[0]:
        gt, pred = load_jsonl(gt_path), load_jsonl(pred_path)
    elif jsonl[1]:
        gt = load_coco(gt_path)[0]
        pred = load_jsonl_by_file(pred_path, coco_file_names(gt_path))
    else:
        gt, pred = load_coco(gt_path, pred_path)
    return evaluate_detections(gt, pred, **options)
