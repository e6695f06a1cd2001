"""The result of a MOT evaluation: counts of matches, misses, switches, ..., and the CLEAR-MOT
and identity metrics derived from them (`pipeline.evaluation.mot` computes the counts).

Keeping counts, not ratios, makes several sequences add up exactly (motmetrics' OVERALL).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.evaluation.hota import HotaSums


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


@dataclass(frozen=True)
class MotReport:
    """Counts of one sequence (or the sum of several); the metrics are properties of them."""

    num_frames: int = 0
    num_objects: int = 0  # ground-truth boxes (object appearances)
    num_predictions: int = 0  # predicted boxes
    num_unique_objects: int = 0
    num_matches: int = 0
    num_switches: int = 0
    num_false_positives: int = 0
    num_misses: int = 0
    num_fragmentations: int = 0
    mostly_tracked: int = 0  # objects matched in >= 80 % of their frames
    partially_tracked: int = 0  # 20 % .. 80 %
    mostly_lost: int = 0  # < 20 %
    sum_distance: float = 0.0  # sum of (1 - IoU) over matched boxes
    idtp: int = 0  # boxes matched under the global identity assignment
    hota_sums: HotaSums = field(default_factory=HotaSums)  # per-alpha sums behind HOTA
    iou_threshold: float = 0.5
    sequences: Mapping[str, MotReport] = field(default_factory=dict)

    @property
    def num_detections(self) -> int:
        return self.num_matches + self.num_switches

    @property
    def mota(self) -> float:
        return 1.0 - _ratio(self.num_misses + self.num_switches + self.num_false_positives, self.num_objects)

    @property
    def motp(self) -> float:
        """Mean (1 - IoU) of the matches, as motmetrics (lower is better)."""
        return _ratio(self.sum_distance, self.num_detections)

    @property
    def motp_iou(self) -> float:
        """Mean IoU of the matches, as MOTChallenge's MOTP (higher is better)."""
        return 1.0 - self.motp

    @property
    def precision(self) -> float:
        return _ratio(self.num_detections, self.num_detections + self.num_false_positives)

    @property
    def recall(self) -> float:
        return _ratio(self.num_detections, self.num_objects)

    @property
    def idfp(self) -> int:
        return self.num_predictions - self.idtp

    @property
    def idfn(self) -> int:
        return self.num_objects - self.idtp

    @property
    def idp(self) -> float:
        return _ratio(self.idtp, self.num_predictions)

    @property
    def idr(self) -> float:
        return _ratio(self.idtp, self.num_objects)

    @property
    def idf1(self) -> float:
        return _ratio(2 * self.idtp, self.num_objects + self.num_predictions)

    @property
    def hota(self) -> float:
        """HOTA, the mean over alpha = 0.05 .. 0.95 of sqrt(DetA * AssA) (higher is better)."""
        return float(np.mean(self.hota_sums.curves()["hota"]))

    @property
    def det_a(self) -> float:
        return float(np.mean(self.hota_sums.curves()["det_a"]))

    @property
    def ass_a(self) -> float:
        return float(np.mean(self.hota_sums.curves()["ass_a"]))

    @property
    def loc_a(self) -> float:
        return float(np.mean(self.hota_sums.curves()["loc_a"]))

    METRICS = (
        "mota",
        "motp",
        "motp_iou",
        "idf1",
        "idp",
        "idr",
        "precision",
        "recall",
        "hota",
        "det_a",
        "ass_a",
        "loc_a",
    )

    @classmethod
    def combine(cls, reports: Mapping[str, MotReport]) -> MotReport:
        """Several sequences summed (motmetrics' OVERALL), keeping each under `sequences`."""
        counts: dict[str, Any] = {  # every count field summed; HotaSums adds up per alpha
            f.name: sum(
                (getattr(r, f.name) for r in reports.values()), HotaSums() if f.name == "hota_sums" else 0
            )
            for f in dataclasses.fields(cls)
            if f.name not in ("iou_threshold", "sequences")
        }
        thresholds = {r.iou_threshold for r in reports.values()}
        return cls(
            **counts,
            iou_threshold=thresholds.pop() if len(thresholds) == 1 else math.nan,
            sequences=dict(reports),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            m: None if math.isnan(getattr(self, m)) else round(getattr(self, m), 6) for m in self.METRICS
        }
        out |= {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("sequences", "hota_sums")
        }
        out["hota_curves"] = {k: np.round(v, 6).tolist() for k, v in self.hota_sums.curves().items()}
        out |= {"idfp": self.idfp, "idfn": self.idfn, "num_detections": self.num_detections}
        out["sum_distance"] = round(self.sum_distance, 6)
        if self.sequences:
            out["sequences"] = {name: r.to_dict() for name, r in self.sequences.items()}
        return out

    def format(self) -> str:
        """A small table: one row per sequence, then the overall one."""
        cols = ("hota", "idf1", "idp", "idr", "recall", "precision", "mota", "motp")
        ints = (
            "num_unique_objects",
            "mostly_tracked",
            "partially_tracked",
            "mostly_lost",
            "num_false_positives",
            "num_misses",
            "num_switches",
            "num_fragmentations",
        )
        heads = "HOTA IDF1 IDP IDR Rcll Prcn MOTA MOTP GT MT PT ML FP FN IDs FM".split()
        rows = [*self.sequences.items(), ("OVERALL" if self.sequences else "", self)]
        width = max(8, *(len(n) for n, _ in rows))
        lines = [" " * width + "".join(f"{h:>7}" for h in heads)]
        for name, r in rows:
            values = [f"{getattr(r, c):7.3f}" for c in cols] + [f"{getattr(r, c):7d}" for c in ints]
            lines.append(f"{name:<{width}}" + "".join(values))
        return "\n".join(lines)
