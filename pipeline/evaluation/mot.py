"""Multi-object tracking metrics: CLEAR-MOT (MOTA, MOTP, switches, fragmentations, MT/PT/ML)
and identity metrics (IDF1, IDP, IDR), computed the way py-motmetrics 1.4 does; also HOTA
(DetA, AssA, LocA) as TrackEval defines it (`pipeline.evaluation.hota`).

Per frame, a ground-truth object and a predicted track can match when their IoU >= the
threshold (0.5). Matches of the previous frames are kept when still possible; the rest are
assigned by minimum total (1 - IoU) (Hungarian, scipy). A match that contradicts an object's
previous one is an ID switch. IDF1 uses one global min-cost matching between whole
ground-truth and predicted trajectories. `motp` follows motmetrics: the mean (1 - IoU) of the
matches (lower is better); `motp_iou` is the MOTChallenge value, the mean IoU.

Inputs: MOTChallenge text (`frame,id,x,y,w,h,conf,...`, 1-based frame and pixel coordinates)
or vigil's JSONL (`sink.jsonl`: frame = seq + 1, boxes xyxy, track_id). Entry points:

    evaluate_mot(gt: MotSequence, pred: MotSequence, iou_threshold=0.5) -> MotReport
    evaluate_paths(gt_path, pred_path, iou_threshold=0.5, source=None) -> MotReport
    load_mot_txt(path, min_confidence=None) -> MotSequence
    load_mot_jsonl(path, source=None) -> MotSequence
    MotReport.combine({name: report, ...}) -> MotReport  (sums, as motmetrics' OVERALL)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from models.geometry import box_iou
from pipeline.evaluation.clear_mot import ClearMotCounts
from pipeline.evaluation.hota import hota_sums
from pipeline.evaluation.mot_report import MotReport
from pipeline.evaluation.records import read_frame_records

__all__ = ["MotReport", "MotSequence", "evaluate_mot", "evaluate_paths", "load_mot_jsonl", "load_mot_txt"]


@dataclass(frozen=True, eq=False)
class MotSequence:
    """The boxes of one sequence, one row per (frame, object): frame (1-based), id, xyxy pixels.

    `frames` lists every frame of the sequence, also those without boxes (they still count).
    """

    frame: np.ndarray
    ids: np.ndarray
    xyxy: np.ndarray
    frames: np.ndarray
    name: str = ""

    @classmethod
    def create(cls, frame: Any, ids: Any, xyxy: Any, frames: Any = None, name: str = "") -> MotSequence:
        f = np.asarray(frame, np.int64).reshape(-1)
        i = np.asarray(ids, np.int64).reshape(-1)
        b = np.asarray(xyxy, np.float64).reshape(-1, 4)
        if not len(f) == len(i) == len(b):
            raise ValueError(f"{len(f)} frames, {len(i)} ids and {len(b)} boxes")
        order = np.argsort(f, kind="stable")
        all_frames = np.unique(np.concatenate([f, np.asarray([] if frames is None else frames, np.int64)]))
        return cls(f[order], i[order], b[order], all_frames, name)

    def __len__(self) -> int:
        return len(self.frame)

    def check_unique(self, what: str) -> None:
        """Raise ValueError if an id appears twice in one frame (invalid for MOT metrics)."""
        order = np.lexsort((self.ids, self.frame))
        f, i = self.frame[order], self.ids[order]
        dup = np.flatnonzero((f[1:] == f[:-1]) & (i[1:] == i[:-1]))
        if len(dup):
            where = f" {self.name}" if self.name else ""
            raise ValueError(f"{what}{where}: id {i[dup[0]]} twice in frame {f[dup[0]]}")

    def at(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, xyxy) of one frame."""
        lo, hi = np.searchsorted(self.frame, [frame, frame + 1])
        return self.ids[lo:hi], self.xyxy[lo:hi]


def evaluate_mot(gt: MotSequence, pred: MotSequence, iou_threshold: float = 0.5) -> MotReport:
    """CLEAR-MOT and IDF1 of predicted tracks against ground truth, one sequence.

    Raises ValueError if an id appears twice in one frame of either sequence.
    """
    gt.check_unique("ground truth")
    pred.check_unique("prediction")
    clear = ClearMotCounts()
    overlaps: dict[tuple[int, int], int] = {}  # (object, prediction) -> frames with IoU >= threshold
    hota_frames = []
    frames = np.union1d(gt.frames, pred.frames)
    for frame in frames:
        oids, obox = gt.at(frame)
        hids, hbox = pred.at(frame)
        iou = box_iou(obox, hbox, np.float64)  # float64, as motmetrics and TrackEval
        hota_frames.append((oids, hids, iou))
        dist = np.where(1.0 - iou > 1.0 - iou_threshold, np.nan, 1.0 - iou)  # NaN: cannot match
        for i, j in zip(*np.nonzero(np.isfinite(dist)), strict=True):
            key = (int(oids[i]), int(hids[j]))
            overlaps[key] = overlaps.get(key, 0) + 1
        clear.add_frame(oids.tolist(), hids, dist)
    ratios = np.array([np.mean(f) for f in clear.matched_flags.values()])
    return MotReport(
        num_frames=len(frames),
        num_objects=len(gt),
        num_predictions=len(pred),
        num_unique_objects=len(clear.matched_flags),
        num_matches=clear.matches,
        num_switches=clear.switches,
        num_false_positives=clear.false_positives,
        num_misses=clear.misses,
        num_fragmentations=clear.fragmentations(),
        mostly_tracked=int((ratios >= 0.8).sum()),
        partially_tracked=int(((ratios >= 0.2) & (ratios < 0.8)).sum()),
        mostly_lost=int((ratios < 0.2).sum()),
        sum_distance=float(clear.sum_distance),
        idtp=_identity_true_positives(overlaps),
        hota_sums=hota_sums(hota_frames),
        iou_threshold=iou_threshold,
    )


def _identity_true_positives(overlaps: Mapping[tuple[int, int], int]) -> int:
    """IDTP: boxes of the best one-to-one pairing of whole GT and predicted trajectories.

    The min-cost form (IDFP + IDFN) of Ristani et al. equals maximising the overlapping
    frames of the paired trajectories, which is what is solved here.
    """
    if not overlaps:
        return 0
    objects = sorted({o for o, _ in overlaps})
    preds = sorted({h for _, h in overlaps})
    oi = {o: k for k, o in enumerate(objects)}
    hi = {h: k for k, h in enumerate(preds)}
    weight = np.zeros((len(objects), len(preds)))
    for (o, h), count in overlaps.items():
        weight[oi[o], hi[h]] = count
    r, c = linear_sum_assignment(weight, maximize=True)
    return int(weight[r, c].sum())


_SPLIT = re.compile(r"[,\s]+")


def load_mot_txt(path: str | PathLike[str], min_confidence: float | None = None) -> MotSequence:
    """MOTChallenge 2D text: `frame,id,x,y,w,h[,conf,...]` (commas or spaces), 1-based.

    x, y are moved to vigil's 0-based pixels (minus 1, as motmetrics does). With
    `min_confidence`, rows whose conf column is lower are dropped (e.g. 1 for MOT16/17 ground
    truth, whose conf 0 rows are "ignore" boxes; distractor classes are not handled).
    """
    rows = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                values = [float(v) for v in _SPLIT.split(line.strip())]
                frame, oid, x, y, w, h = values[:6]
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a MOTChallenge row ({exc})") from exc
            conf = values[6] if len(values) > 6 else 1.0
            if min_confidence is None or conf >= min_confidence:
                rows.append((frame, oid, x - 1, y - 1, x - 1 + w, y - 1 + h))
    arr = np.asarray(rows, np.float64).reshape(-1, 6)
    return MotSequence.create(arr[:, 0], arr[:, 1], arr[:, 2:], name=Path(path).parent.name)


def _read_jsonl(path: str | PathLike[str]) -> dict[str, MotSequence]:
    """Every source of a vigil JSONL file; detections without a track_id are left out."""
    rows: dict[str, list[tuple[int, int, list[float]]]] = {}
    frames: dict[str, list[int]] = {}
    for source, seq, detections in read_frame_records(path):
        frame = seq + 1
        frames.setdefault(source, []).append(frame)
        rows.setdefault(source, []).extend(
            (frame, int(d["track_id"]), list(d["box"])) for d in detections if d.get("track_id") is not None
        )
    return {
        source: MotSequence.create(
            [r[0] for r in rows[source]],
            [r[1] for r in rows[source]],
            [r[2] for r in rows[source]],
            frames[source],
            source,
        )
        for source in frames
    }


def load_mot_jsonl(path: str | PathLike[str], source: str | None = None) -> MotSequence:
    """One source of vigil's JSONL (`{"source", "seq", "detections": [{"box", "track_id"}...]}`).

    frame = seq + 1; boxes xyxy pixels; detections with no track_id are left out; a line
    with no detections still counts as a frame. `source` is needed when the file has several.
    """
    sequences = _read_jsonl(path)
    if source is None:
        if len(sequences) > 1:
            raise ValueError(f"{path} holds several sources ({', '.join(sorted(sequences))}): choose one")
        return next(iter(sequences.values()), MotSequence.create([], [], []))
    if source not in sequences:
        raise ValueError(f"{path} has no source {source!r} (it has {', '.join(sorted(sequences)) or 'none'})")
    return sequences[source]


def _load_all(path: str | PathLike[str]) -> dict[str, MotSequence]:
    if Path(path).suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return _read_jsonl(path)
    seq = load_mot_txt(path)
    return {seq.name: seq}


def evaluate_paths(
    gt: str | PathLike[str], pred: str | PathLike[str], iou_threshold: float = 0.5, source: str | None = None
) -> MotReport:
    """Score a prediction file against a ground-truth file (each MOTChallenge .txt or vigil .jsonl).

    Files with several sources (JSONL) are scored per source and summed; `source` picks one.
    A single MOTChallenge file on either side is paired with the single sequence of the other.
    """
    gts, preds = _load_all(gt), _load_all(pred)
    if source is not None:
        gts, preds = _pick(gts, source, gt), _pick(preds, source, pred)
    if len(gts) == 1 and len(preds) == 1:
        (only_gt,), (only_pred,) = gts.values(), preds.values()
        return evaluate_mot(only_gt, only_pred, iou_threshold=iou_threshold)
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise ValueError(f"{pred} has no results for source(s) {', '.join(missing)} of {gt}")
    return MotReport.combine(
        {name: evaluate_mot(gts[name], preds[name], iou_threshold) for name in sorted(gts)}
    )


def _pick(
    sequences: dict[str, MotSequence], source: str, path: str | PathLike[str]
) -> dict[str, MotSequence]:
    if source in sequences:
        return {source: sequences[source]}
    if len(sequences) == 1:  # a MOTChallenge file is one sequence, whatever its name
        return sequences
    raise ValueError(f"{path} has no source {source!r} (it has {', '.join(sorted(sequences)) or 'none'})")
