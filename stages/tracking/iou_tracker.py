"""IoU tracker: no motion model, each track is matched by the overlap of its last box.

The cheapest tracker, good when the frame rate is high compared with the motion (boxes of
one object overlap well from frame to frame), as in Bochinski et al., "High-Speed
Tracking-by-Detection Without Using Image Information" (AVSS 2017).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from stages.tracking.assignment import Similarity, greedy_pairs, hungarian_pairs, iou_matrix, unmatched
from stages.tracking.tracks import Tracker


class IouTracker(Tracker):
    """Associate detections with the last box of each track by IoU.

    iou_threshold: minimum similarity (IoU by default, 0..1) for a track/detection match.
    max_age: frames a confirmed track may go unmatched (it keeps its last box meanwhile).
    min_hits: matched frames before a track is confirmed and gets an ID.
    matcher: "greedy" (best pairs first, fastest) or "hungarian" (best total overlap).
    class_aware: only match detections of the track's class (a track never switches class).
    emit_tentative: give IDs to tracks before they are confirmed.
    similarity: (track boxes, detection boxes) -> matrix, higher is better.
    """

    def __init__(
        self,
        iou_threshold: float = 0.3,
        max_age: int = 2,
        min_hits: int = 3,
        matcher: Literal["greedy", "hungarian"] = "greedy",
        class_aware: bool = True,
        emit_tentative: bool = False,
        similarity: Similarity = iou_matrix,
    ) -> None:
        if matcher not in ("greedy", "hungarian"):
            raise ValueError(f"matcher must be 'greedy' or 'hungarian', not {matcher!r}")
        self.match = greedy_pairs if matcher == "greedy" else hungarian_pairs
        super().__init__(
            iou_threshold=iou_threshold,
            max_age=max_age,
            min_hits=min_hits,
            class_aware=class_aware,
            emit_tentative=emit_tentative,
            similarity=similarity,
        )

    def _empty_columns(self) -> dict[str, np.ndarray]:
        return {"box": np.zeros((0, 4))}

    def _coast(self) -> np.ndarray:
        return self.table.columns["box"]  # no motion model: a track stays where it was last seen

    def _update(self, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        boxes = self.table.columns["box"]
        ti, di = self.match(*self._candidates(boxes, xyxy, class_ids, self.iou_threshold))
        boxes[ti] = xyxy[di]
        new = unmatched(len(xyxy), di)
        return self.table.step(class_ids, ti, di, new, {"box": xyxy[new]})
