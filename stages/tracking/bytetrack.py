"""ByteTrack: associate every detection box, low-score ones included.

Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box"
(ECCV 2022). High-score detections are matched first to all tracks (lost ones included);
the tracks still unmatched then take low-score detections (often occluded objects), which
keeps identities through partial occlusion without letting weak boxes start new tracks.
"""

from __future__ import annotations

import numpy as np

from stages.tracking.assignment import Similarity, hungarian_pairs, iou_matrix, select
from stages.tracking.sort import KalmanTracker


class ByteTracker(KalmanTracker):
    """Two-stage association on Kalman-predicted boxes.

    high_score: detections with score >= this (0..1) take part in the first association.
    low_score: detections with score in [low_score, high_score) only continue existing
        tracks, in the second association; lower ones are ignored.
    new_track_score: an unmatched high-score detection starts a track only if its score is
        >= this (0..1).
    iou_threshold: minimum IoU (0..1) for a match in the first association.
    low_iou_threshold: minimum IoU (0..1) for a match in the second (low-score) association.
    max_age: frames a confirmed track may go unmatched and still be continued.
    min_hits: matched frames before a track is confirmed and gets an ID.
    class_aware: only match detections of the track's class (a track never switches class).
    emit_tentative: give IDs to tracks before they are confirmed.
    similarity: (track boxes, detection boxes) -> matrix, higher is better.
    """

    def __init__(
        self,
        high_score: float = 0.5,
        low_score: float = 0.1,
        new_track_score: float = 0.6,
        iou_threshold: float = 0.2,
        low_iou_threshold: float = 0.5,
        max_age: int = 30,
        min_hits: int = 2,
        class_aware: bool = True,
        emit_tentative: bool = False,
        similarity: Similarity = iou_matrix,
    ) -> None:
        self.high_score = high_score
        self.low_score = low_score
        self.new_track_score = new_track_score
        self.low_iou_threshold = low_iou_threshold
        super().__init__(
            iou_threshold=iou_threshold,
            max_age=max_age,
            min_hits=min_hits,
            class_aware=class_aware,
            emit_tentative=emit_tentative,
            similarity=similarity,
        )

    def _update(self, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        table = self.table
        # Which tracks were being followed up to the last frame (not lost, not new).
        tracked = table.confirmed & (table.misses == 0)
        _, predicted = self._predict()
        pairs = self._candidates(predicted, xyxy, class_ids, min(self.iou_threshold, self.low_iou_threshold))
        rows, cols, sim = pairs
        high = scores >= self.high_score
        ti, di = hungarian_pairs(*select(pairs, high[cols] & (sim >= self.iou_threshold)))
        low = (scores >= self.low_score) & ~high
        if low.any():  # else the second association has nothing to match
            free = tracked.copy()
            free[ti] = False
            second = free[rows] & low[cols] & (sim >= self.low_iou_threshold)
            t2, d2 = hungarian_pairs(*select(pairs, second))
            ti, di = np.concatenate([ti, t2]), np.concatenate([di, d2])

        new = high & (scores >= self.new_track_score)
        new[di] = False
        return self._correct_and_step(xyxy, class_ids, ti, di, new.nonzero()[0])
