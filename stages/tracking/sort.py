"""SORT: a constant-velocity Kalman filter per track and Hungarian matching on IoU.

Bewley et al., "Simple Online and Realtime Tracking" (ICIP 2016). Boxes are predicted one
frame ahead, then matched to the detections by maximum total IoU; the prediction carries a
track through short gaps (occlusions, missed detections).
"""

from __future__ import annotations

import numpy as np

from stages.tracking.assignment import Similarity, hungarian_pairs, iou_matrix, unmatched
from stages.tracking.kalman import BoxKalman
from stages.tracking.tracks import Tracker


class KalmanTracker(Tracker):
    """Shared motion handling of SORT and ByteTrack (columns `mean`, `cov` of the table)."""

    kalman = BoxKalman()

    def _empty_columns(self) -> dict[str, np.ndarray]:
        return {"mean": np.zeros((0, 8)), "cov": np.zeros((0, 2, 2, 4))}

    def _predict(self) -> tuple[np.ndarray, np.ndarray]:
        """Every track one frame ahead; returns (states, predicted xyxy boxes)."""
        cols = self.table.columns
        # A track that is not seen keeps its size: extrapolating growth makes boxes explode.
        cols["mean"][self.table.misses > 0, 6:] = 0.0
        cols["mean"], cols["cov"] = self.kalman.predict(cols["mean"], cols["cov"])
        return cols["mean"], self.kalman.boxes(cols["mean"])

    def _coast(self) -> np.ndarray:
        return self._predict()[1]

    def _correct_and_step(
        self, xyxy: np.ndarray, class_ids: np.ndarray, ti: np.ndarray, di: np.ndarray, new: np.ndarray
    ) -> np.ndarray:
        cols = self.table.columns
        if len(ti):
            mean, cov = self.kalman.update(cols["mean"][ti], cols["cov"][ti], xyxy[di])
            cols["mean"][ti], cols["cov"][ti] = mean, cov
            self.smoothed[di] = self.kalman.boxes(mean)
        born: dict[str, np.ndarray] = {}
        if len(new):
            born["mean"], born["cov"] = self.kalman.initiate(xyxy[new])
        return self.table.step(class_ids, ti, di, new, born)


class SortTracker(KalmanTracker):
    """SORT: Kalman prediction + optimal (Hungarian) IoU matching.

    iou_threshold: minimum similarity (IoU by default, 0..1) between a predicted track box
        and a detection for a match.
    max_age: frames a confirmed track may go unmatched (predicted meanwhile) and still be
        continued with the same ID.
    min_hits: matched frames before a track is confirmed and gets an ID.
    class_aware: only match detections of the track's class (a track never switches class).
    emit_tentative: give IDs to tracks before they are confirmed.
    similarity: (track boxes, detection boxes) -> matrix, higher is better.
    """

    def __init__(
        self,
        iou_threshold: float = 0.3,
        max_age: int = 30,
        min_hits: int = 3,
        class_aware: bool = True,
        emit_tentative: bool = False,
        similarity: Similarity = iou_matrix,
    ) -> None:
        super().__init__(
            iou_threshold=iou_threshold,
            max_age=max_age,
            min_hits=min_hits,
            class_aware=class_aware,
            emit_tentative=emit_tentative,
            similarity=similarity,
        )

    def _update(self, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        _, predicted = self._predict()
        ti, di = hungarian_pairs(*self._candidates(predicted, xyxy, class_ids, self.iou_threshold))
        return self._correct_and_step(xyxy, class_ids, ti, di, unmatched(len(xyxy), di))
