"""Track lifecycle shared by every tracker: states, public IDs, removal.

tentative --(min_hits matched frames)--> confirmed --(unmatched)--> lost --(max_age more
frames unmatched)--> removed. A lost track that is matched again is confirmed again with the
same ID. A tentative track that misses a single frame is removed at once.

A public ID is given the first time a track is reported (when it is confirmed, or at birth
with `emit_tentative`), from a counter that only goes up: IDs are never reused, not even
after `reset()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Any

import numpy as np

from pipeline.frame import NO_TRACK
from stages.tracking.assignment import Pairs, Similarity, dense_pairs, iou_matrix, iou_pairs, select


class TrackState(IntEnum):
    """Where a live track is in its lifecycle (removed tracks are gone from the table)."""

    TENTATIVE = 0
    CONFIRMED = 1
    LOST = 2


class TrackTable:
    """The live tracks of one tracker as parallel arrays, plus the columns of its motion model.

    min_hits: matched frames (the first included) before a track is confirmed; 1 = at once.
    max_age: frames a confirmed track may stay unmatched and still be continued.
    emit_tentative: report tracks (give them an ID) before they are confirmed.
    """

    def __init__(self, min_hits: int = 3, max_age: int = 30, emit_tentative: bool = False) -> None:
        if min_hits < 1 or max_age < 0:
            raise ValueError("min_hits must be >= 1 and max_age >= 0")
        self.min_hits = min_hits
        self.max_age = max_age
        self.emit_tentative = emit_tentative
        self.next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget every track; the ID counter keeps going."""
        self.ids = np.zeros(0, np.int64)  # public ID, -1 until first reported
        self.class_id = np.zeros(0, np.int32)
        self.hits = np.zeros(0, np.int32)  # matched frames in total
        self.misses = np.zeros(0, np.int32)  # consecutive unmatched frames (0 = matched now)
        self.confirmed = np.zeros(0, bool)
        self.columns: dict[str, np.ndarray] = {}  # motion-model state, one row per track

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def state(self) -> np.ndarray:
        """TrackState code per live track (int8)."""
        state = np.where(self.confirmed, TrackState.CONFIRMED, TrackState.TENTATIVE)
        state[self.confirmed & (self.misses > 0)] = TrackState.LOST
        return state.astype(np.int8)

    def step(
        self,
        det_class: np.ndarray,
        track_idx: np.ndarray,
        det_idx: np.ndarray,
        new_det_idx: np.ndarray,
        new_columns: Mapping[str, np.ndarray],
    ) -> np.ndarray:
        """Apply one frame's association and return the public track ID of each detection.

        det_class: class id per detection (N,); (track_idx[k], det_idx[k]) are the matched
        pairs; new_det_idx: detections that start a tentative track, whose motion columns are
        `new_columns` (one row each, same names as `columns`). Columns of matched tracks must
        already hold their corrected state. Unmatched detections get -1.
        """
        matched = np.zeros(len(self), bool)
        matched[track_idx] = True
        self.hits += matched
        self.misses += 1
        self.misses[matched] = 0
        self.confirmed |= self.hits >= self.min_hits
        keep = matched | (self.confirmed & (self.misses <= self.max_age))

        det_track = np.full(len(det_class), -1, np.int64)
        if keep.all():  # the usual frame: no track ends, rows keep their places
            det_track[det_idx] = track_idx
        else:
            det_track[det_idx] = (np.cumsum(keep) - 1)[track_idx]
            self._keep(keep)
        if len(new_det_idx):
            self._add(det_class[new_det_idx], new_columns)
            det_track[new_det_idx] = len(self) - len(new_det_idx) + np.arange(len(new_det_idx))
        return self._report(det_track)

    def _keep(self, keep: np.ndarray) -> None:
        self.ids, self.class_id = self.ids[keep], self.class_id[keep]
        self.hits, self.misses, self.confirmed = self.hits[keep], self.misses[keep], self.confirmed[keep]
        self.columns = {k: v[keep] for k, v in self.columns.items()}

    def _add(self, class_id: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        """Append tentative tracks (just matched once) of these classes with these motion columns."""
        n = len(class_id)
        self.ids = np.concatenate([self.ids, np.full(n, NO_TRACK, np.int64)])
        self.class_id = np.concatenate([self.class_id, class_id.astype(np.int32)])
        self.hits = np.concatenate([self.hits, np.ones(n, np.int32)])
        self.misses = np.concatenate([self.misses, np.zeros(n, np.int32)])
        self.confirmed = np.concatenate([self.confirmed, np.full(n, self.min_hits <= 1)])
        for name, value in columns.items():
            old = self.columns.get(name)
            self.columns[name] = value if old is None else np.concatenate([old, value])

    def _report(self, det_track: np.ndarray) -> np.ndarray:
        out = np.full(len(det_track), NO_TRACK, np.int64)
        has = (det_track >= 0).nonzero()[0]
        rows = det_track[has]
        if not self.emit_tentative:
            shown = self.confirmed[rows]
            has, rows = has[shown], rows[shown]
        fresh = rows[self.ids[rows] == NO_TRACK]  # first report: in detection order
        if len(fresh):
            self.ids[fresh] = self.next_id + np.arange(len(fresh))
            self.next_id += len(fresh)
        out[has] = self.ids[rows]
        return out


def _inputs(xyxy: Any, scores: Any, class_ids: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    n = len(boxes)
    scores = np.ones(n) if scores is None else np.asarray(scores, np.float64).reshape(-1)
    class_ids = np.zeros(n, np.int32) if class_ids is None else np.asarray(class_ids, np.int32).reshape(-1)
    if len(scores) != n or len(class_ids) != n:
        raise ValueError(f"{n} boxes but {len(scores)} scores and {len(class_ids)} class ids")
    return boxes, scores, class_ids


class Tracker:
    """Base of the pure trackers: `update(xyxy, scores, class_ids) -> track_ids` once a frame.

    Subclasses implement `_update` (association + motion model) on a `TrackTable`.
    After `update`, `smoothed` holds one box per detection row: the tracker's estimate for
    tracked rows, the input box for the others.
    """

    def __init__(
        self,
        *,
        iou_threshold: float,
        max_age: int,
        min_hits: int,
        class_aware: bool = True,
        emit_tentative: bool = False,
        similarity: Similarity = iou_matrix,
    ) -> None:
        self.iou_threshold = iou_threshold
        self.class_aware = class_aware
        self.similarity = similarity
        self.table = TrackTable(min_hits=min_hits, max_age=max_age, emit_tentative=emit_tentative)
        self.smoothed = np.zeros((0, 4))
        self.reset()

    def reset(self) -> None:
        """Forget every track (end of a stream); IDs given later are still new ones."""
        self.table.reset()
        self.table.columns = self._empty_columns()

    def update(self, xyxy: Any, scores: Any = None, class_ids: Any = None) -> np.ndarray:
        """One frame of detections (N, 4) xyxy pixels -> track ID per row (int64, -1 = none)."""
        boxes, scores, class_ids = _inputs(xyxy, scores, class_ids)
        self.smoothed = boxes.copy()
        return self._update(boxes, scores, class_ids)

    def predict(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame with no detector run (a gated detector skipped it): advance the motion model
        and return (track ids, xyxy boxes, class ids) of the reported tracks followed up to now.
        No track counts a miss, so stationary objects stay alive between re-checks."""
        boxes = np.asarray(self._coast(), np.float64).reshape(-1, 4)
        t = self.table
        show = (t.misses == 0) & (t.ids != NO_TRACK)
        return t.ids[show].copy(), boxes[show], t.class_id[show].copy()

    def _coast(self) -> np.ndarray:
        """Advance every track one frame without measurements; their boxes (T, 4)."""
        raise NotImplementedError

    def _empty_columns(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _update(self, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _candidates(
        self, track_boxes: np.ndarray, xyxy: np.ndarray, class_ids: np.ndarray, minimum: float
    ) -> Pairs:
        """Track/detection pairs with similarity >= `minimum` (and of one class if class-aware)."""
        if self.similarity is iou_matrix:  # the sparse form of the same values
            rows, cols, sim = iou_pairs(track_boxes, xyxy, minimum)
        else:
            rows, cols, sim = dense_pairs(self.similarity(track_boxes, xyxy), minimum)
        if self.class_aware:
            return select((rows, cols, sim), self.table.class_id[rows] == class_ids[cols])
        return rows, cols, sim
