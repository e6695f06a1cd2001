"""COCO-style detection AP (the pycocotools bbox protocol) over vigil `Detections`.

Matches pycocotools `COCOeval` (iouType "bbox", area range "all"): per image and class,
detections sorted by score (stable) and cut to `max_dets` are greedily matched to the unmatched
ground-truth box of highest IoU >= t; precision is made monotone and sampled at 101 recall
points. Crowd regions (a ground-truth `iscrowd` attribute of 1) are pycocotools' "ignore"
boxes: their IoU is the intersection over the detection's own area, any number of detections
may match one, and a detection matched to a crowd (and to no regular box) counts neither as a
true nor as a false positive. Classes are compared by label; a class with no regular ground
truth does not count. Loading files: `pipeline.evaluation.detection_io`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from models.geometry import box_iou
from pipeline.frame import Detections

COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(np.linspace(0.5, 0.95, 10).tolist())  # pycocotools' values
_RECALL_POINTS = np.linspace(0.0, 1.0, 101)

# An image: a COCO image id, or (source, seq) of a vigil JSONL frame record.
ImageKey = int | str | tuple[str, int]


@dataclass(frozen=True)
class DetectionSet:
    """Boxes per image: image key -> `Detections` (xyxy pixels; `label` names the class).

    Keys are COCO image ids or (source, seq) of vigil JSONL (`pipeline.evaluation.detection_io`);
    ground truth and predictions must use the same keys. The ground truth's keys define the
    evaluated images; ground truth may mark crowd regions with an `iscrowd` attribute (1).
    """

    images: Mapping[ImageKey, Detections] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_boxes(self) -> int:
        return sum(len(d) for d in self.images.values())


@dataclass(frozen=True)
class ClassAP:
    """AP of one class: mean over IoU thresholds (`ap`), at 0.5 and 0.75, and recall at max_dets."""

    label: str
    ap: float
    ap50: float
    ap75: float
    recall: float
    num_gt: int
    num_pred: int


@dataclass(frozen=True)
class DetectionReport:
    """COCO metrics: `map` = mAP@[.5:.95] (pycocotools stats[0]), `ap50`/`ap75` (stats[1], [2]),
    `recall` = AR@max_dets (stats[8]); NaN when no class has ground truth (or the threshold is
    not evaluated). `unmatched_labels`: predicted labels that never occur in the ground truth."""

    map: float
    ap50: float
    ap75: float
    recall: float
    per_class: tuple[ClassAP, ...]
    iou_thresholds: tuple[float, ...]
    max_dets: int
    num_images: int
    num_gt: int
    num_pred: int
    unmatched_labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (NaN -> None), per-class results keyed by label."""
        out = asdict(self)
        out["per_class"] = {
            c.label: {k: v for k, v in asdict(c).items() if k != "label"} for c in self.per_class
        }
        return _nan_to_none(out)

    def format(self) -> str:
        """A short text table for the terminal."""
        lines = [
            f"mAP@[.5:.95] {self.map:.4f}  AP50 {self.ap50:.4f}  AP75 {self.ap75:.4f}  AR@{self.max_dets} "
            f"{self.recall:.4f}  ({self.num_images} images, {self.num_gt} gt, {self.num_pred} predictions)",
            f"{'label':<20} {'AP':>7} {'AP50':>7} {'AP75':>7} {'recall':>7} {'gt':>6} {'pred':>6}",
        ]
        for c in self.per_class:
            lines.append(
                f"{c.label:<20} {c.ap:7.4f} {c.ap50:7.4f} {c.ap75:7.4f} {c.recall:7.4f} {c.num_gt:6d} {c.num_pred:6d}"
            )
        if self.unmatched_labels:
            lines.append("predicted labels absent from the ground truth: " + ", ".join(self.unmatched_labels))
        return "\n".join(lines)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def crowd_iou(xyxy: np.ndarray, crowd_xyxy: np.ndarray) -> np.ndarray:
    """(D, G) intersection over the detection's area (pycocotools' IoU against a crowd region)."""
    d = np.asarray(xyxy, np.float64).reshape(-1, 1, 4)
    g = np.asarray(crowd_xyxy, np.float64).reshape(1, -1, 4)
    w = np.clip(np.minimum(d[..., 2], g[..., 2]) - np.maximum(d[..., 0], g[..., 0]), 0, None)
    h = np.clip(np.minimum(d[..., 3], g[..., 3]) - np.maximum(d[..., 1], g[..., 1]), 0, None)
    area = (d[..., 2] - d[..., 0]) * (d[..., 3] - d[..., 1])
    return np.divide(w * h, area, out=np.zeros(w.shape), where=area > 0)


def _match(
    ious: np.ndarray, thresholds: np.ndarray, crowd_ious: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy COCO matching of score-sorted detections (rows of `ious`) -> (matched, ignored),
    both (T, D) bool: ignored = matched to no regular box but to a crowd region (`crowd_ious`)."""
    n_det, n_gt = ious.shape
    taken = np.zeros((len(thresholds), n_gt), bool)
    matched = np.zeros((len(thresholds), n_det), bool)
    limits = np.minimum(thresholds, 1 - 1e-10)[:, None]
    rows = np.arange(len(thresholds))
    for d in range(n_det if n_gt else 0):
        candidates = np.where(~taken & (ious[d] >= limits), ious[d], -np.inf)[:, ::-1]
        best = n_gt - 1 - candidates.argmax(axis=1)  # the last of equal IoUs wins, as in pycocotools
        ok = np.isfinite(candidates.max(axis=1))
        taken[rows[ok], best[ok]] = True
        matched[:, d] = ok
    ignored = np.zeros_like(matched)
    if crowd_ious is not None and crowd_ious.size:
        ignored = ~matched & (crowd_ious.max(axis=1)[None, :] >= limits)
    return matched, ignored


def _precision(
    scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray, num_gt: int
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 101) interpolated precision and (T,) final recall of one class over all images;
    `ignored` detections (on crowd regions) count neither way."""
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum((matched & ~ignored)[:, order], axis=1, dtype=np.float64)
    fp = np.cumsum((~matched & ~ignored)[:, order], axis=1, dtype=np.float64)
    if tp.shape[1] == 0:
        return np.zeros((len(matched), len(_RECALL_POINTS))), np.zeros(len(matched))
    recall = tp / num_gt
    precision = tp / (tp + fp + np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    sampled = np.zeros((len(matched), len(_RECALL_POINTS)))
    for t in range(len(matched)):
        idx = np.searchsorted(recall[t], _RECALL_POINTS, side="left")
        valid = idx < tp.shape[1]
        sampled[t, valid] = precision[t, idx[valid]]
    return sampled, recall[:, -1]


def _at(values: np.ndarray, thresholds: np.ndarray, iou: float) -> float:
    hit = np.flatnonzero(np.isclose(thresholds, iou, atol=1e-9))
    return float(values[hit[0]].mean()) if hit.size and values.size else math.nan


def evaluate_detections(
    gt: DetectionSet,
    pred: DetectionSet,
    iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
    max_dets: int = 100,
) -> DetectionReport:
    """COCO bbox AP of `pred` against `gt` (both `DetectionSet`; see the module docstring).

    iou_thresholds: default 0.50:0.05:0.95 (pycocotools' exact values); max_dets: detections
    kept per image and class, by score. Predictions on images absent from `gt` are ignored.
    """
    thresholds = np.asarray(iou_thresholds, np.float64)
    keys = sorted(gt.images)  # pycocotools walks image ids in sorted order; ties depend on it
    gt_labels = {str(x) for d in gt.images.values() for x in d[~_crowd_mask(d)].label}
    pred_labels = {str(x) for k in keys for x in pred.images.get(k, Detections.empty()).label}
    per_class, precisions, recalls = [], [], []
    for label in sorted(gt_labels):
        ap, sampled, recall = _class_ap(label, keys, gt, pred, thresholds, max_dets)
        per_class.append(ap)
        precisions.append(sampled)
        recalls.append(recall)
    stacked = np.stack(precisions, axis=1) if precisions else np.zeros((len(thresholds), 0, 1))
    return DetectionReport(
        map=float(stacked.mean()) if stacked.size else math.nan,
        ap50=_at(stacked.mean(axis=(1, 2)), thresholds, 0.5) if stacked.size else math.nan,
        ap75=_at(stacked.mean(axis=(1, 2)), thresholds, 0.75) if stacked.size else math.nan,
        recall=float(np.mean(recalls)) if recalls else math.nan,
        per_class=tuple(per_class),
        iou_thresholds=tuple(float(t) for t in thresholds),
        max_dets=max_dets,
        num_images=len(keys),
        num_gt=gt.num_boxes,
        num_pred=sum(c.num_pred for c in per_class),
        unmatched_labels=tuple(sorted(pred_labels - gt_labels)),
    )


def _crowd_mask(det: Detections) -> np.ndarray:
    """Rows of ground truth marked `iscrowd` (a missing or None value is a regular box)."""
    column = det.attributes.get("iscrowd")
    if column is None:
        return np.zeros(len(det), bool)
    return np.array([bool(v) for v in column], bool)


def _class_ap(
    label: str,
    keys: Sequence[ImageKey],
    gt: DetectionSet,
    pred: DetectionSet,
    thresholds: np.ndarray,
    max_dets: int,
) -> tuple[ClassAP, np.ndarray, np.ndarray]:
    """One class over all images: its `ClassAP`, sampled precision (T, 101) and recall (T,)."""
    scores, matches, ignores, num_gt = [], [], [], 0
    for key in keys:
        g = gt.images[key]
        g = g[g.label == label]
        crowd = _crowd_mask(g)
        d = pred.images.get(key, Detections.empty())
        d = d[d.label == label]
        d = d[np.argsort(-d.score, kind="mergesort")[:max_dets]]
        num_gt += int((~crowd).sum())
        scores.append(d.score)
        ious = box_iou(d.xyxy, g.xyxy[~crowd], np.float64)
        matched, ignored = _match(ious, thresholds, crowd_iou(d.xyxy, g.xyxy[crowd]))
        matches.append(matched)
        ignores.append(ignored)
    sampled, recall = _precision(
        np.concatenate(scores), np.concatenate(matches, axis=1), np.concatenate(ignores, axis=1), num_gt
    )
    ap_t = sampled.mean(axis=1)
    ap = ClassAP(
        label,
        float(ap_t.mean()),
        _at(ap_t, thresholds, 0.5),
        _at(ap_t, thresholds, 0.75),
        float(recall.mean()),
        num_gt,
        sum(len(s) for s in scores),
    )
    return ap, sampled, recall
