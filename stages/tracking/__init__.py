"""Pure multi-object trackers: `tracker.update(xyxy, scores, class_ids) -> track_ids`.

No video, no frames: boxes in, IDs out (-1 where a detection has no confirmed track).
The stage kinds `track.iou`, `track.sort`, `track.bytetrack` (stages/track.py) wrap them.
"""

from stages.tracking.assignment import (
    greedy_pairs,
    hungarian_pairs,
    iou_matrix,
    iou_pairs,
    match_greedy,
    match_hungarian,
)
from stages.tracking.bytetrack import ByteTracker
from stages.tracking.iou_tracker import IouTracker
from stages.tracking.kalman import BoxKalman
from stages.tracking.sort import SortTracker
from stages.tracking.tracks import Tracker, TrackState, TrackTable

__all__ = [
    "BoxKalman",
    "ByteTracker",
    "IouTracker",
    "SortTracker",
    "TrackState",
    "TrackTable",
    "Tracker",
    "greedy_pairs",
    "hungarian_pairs",
    "iou_matrix",
    "iou_pairs",
    "match_greedy",
    "match_hungarian",
]
