"""The detections a tracker reports on a frame no detector ran on (`frame.predicted`).

A gated detector (see `stages.detect_gate`) skips still frames; the tracker stage then calls
`Tracker.predict()` instead of `update()` and reports the followed tracks at their predicted
boxes, with the label and score they had when last detected.
"""

from __future__ import annotations

import numpy as np

from pipeline.frame import NO_TRACK, Detections
from stages.tracking import Tracker


class LastSeen:
    """Label of each class id and last score of each live track, as the detector last gave them."""

    def __init__(self) -> None:
        self.labels: dict[int, str] = {}
        self.scores: dict[int, float] = {}

    def remember(self, det: Detections, tracker: Tracker) -> None:
        """Note the tracked rows of a detected frame; forget tracks the tracker dropped."""
        for cid, label in zip(det.class_id.tolist(), det.label, strict=True):
            self.labels.setdefault(int(cid), str(label))
        tracked = det.track_id != NO_TRACK
        self.scores.update(zip(det.track_id[tracked].tolist(), det.score[tracked].tolist(), strict=True))
        if len(self.scores) > 2 * len(tracker.table) + 16:  # prune now and then, not every frame
            live = set(tracker.table.ids.tolist())
            self.scores = {k: v for k, v in self.scores.items() if k in live}

    def predicted(self, tracker: Tracker) -> Detections:
        """The tracker's predicted rows for a frame without detections (advances the tracker)."""
        ids, boxes, class_ids = tracker.predict()
        return Detections.create(
            boxes.astype(np.float32),
            score=[self.scores.get(int(i), 1.0) for i in ids],
            class_id=class_ids,
            label=[self.labels.get(int(c), "") for c in class_ids],
            track_id=ids,
        )
