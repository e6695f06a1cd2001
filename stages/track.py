"""`track.iou`, `track.sort`, `track.bytetrack`: fill `track_id` of each frame's detections.

Thin shells over the pure trackers of `stages.tracking`. One tracker per source (`frame.source`)
inside one stage, so IDs are unique per source and never reused (not even when a source ends
and starts again). Detections keep their rows, order and boxes (unless `smooth_boxes`); rows
without a confirmed track keep track_id -1.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeVar

import numpy as np
from pydantic import Field, model_validator

from pipeline.frame import Detections, Frame
from pipeline.stage import Options, Stage, StageContext, register
from stages.track_predicted import LastSeen
from stages.tracking import ByteTracker, IouTracker, SortTracker, Tracker


class TrackOptions(Options):
    """Options shared by every tracker. Times are in frames of the source."""

    iou_threshold: float = Field(
        0.3, ge=0, le=1, description="minimum IoU (0..1) of a track box and a detection to match"
    )
    max_age: int = Field(
        30,
        ge=0,
        le=10_000,
        description="frames a confirmed track may go unmatched and still keep its ID (at most 10000)",
    )
    min_hits: int = Field(3, ge=1, description="matched frames before a track is confirmed and gets an ID")
    class_aware: bool = Field(
        True, description="only match detections of the same class (a track never switches class)"
    )
    emit_tentative: bool = Field(False, description="give IDs to tracks before they are confirmed")


class IouTrackOptions(TrackOptions):
    """Options of `track.iou` (no motion model: fast, for high frame rates)."""

    max_age: int = Field(
        2,
        ge=0,
        le=10_000,
        description="frames a confirmed track may go unmatched (it keeps its last box; at most 10000)",
    )
    matcher: Literal["greedy", "hungarian"] = Field(
        "greedy", description="greedy: best overlaps first (fastest); hungarian: best total overlap"
    )


class KalmanTrackOptions(TrackOptions):
    """Options shared by the trackers with a Kalman motion model."""

    smooth_boxes: bool = Field(False, description="replace tracked boxes by the Kalman estimate")


class SortOptions(KalmanTrackOptions):
    """Options of `track.sort` (Kalman constant-velocity prediction + Hungarian IoU matching)."""


class ByteTrackOptions(KalmanTrackOptions):
    """Options of `track.bytetrack` (two-stage association: high-score then low-score boxes).

    Give it the detector's low-score boxes too (detector threshold around `low_score`).
    """

    iou_threshold: float = Field(
        0.2, ge=0, le=1, description="minimum IoU (0..1) to match in the first (high-score) stage"
    )
    min_hits: int = Field(2, ge=1, description="matched frames before a track is confirmed and gets an ID")
    high_score: float = Field(
        0.5, ge=0, le=1, description="detections >= this score (0..1) match first and may start tracks"
    )
    low_score: float = Field(
        0.1, ge=0, le=1, description="detections in [low_score, high_score) only continue tracks"
    )
    new_track_score: float = Field(
        0.6, ge=0, le=1, description="minimum score (0..1) of a detection that starts a track"
    )
    low_iou_threshold: float = Field(
        0.5, ge=0, le=1, description="minimum IoU (0..1) to match in the low-score stage"
    )

    @model_validator(mode="after")
    def _ordered(self) -> ByteTrackOptions:
        if self.low_score > self.high_score:
            raise ValueError(f"low_score ({self.low_score}) must be <= high_score ({self.high_score})")
        return self


TrackT = TypeVar("TrackT", bound=TrackOptions)
KalmanTrackT = TypeVar("KalmanTrackT", bound=KalmanTrackOptions)


class _TrackStage(Stage[TrackT]):
    """Runs one pure tracker per source.

    Every option except `smooth_boxes` (the stage's own) is the tracker constructor's
    keyword of the same name.
    """

    stateful: ClassVar[bool] = True
    tracker: ClassVar[type[Tracker]]

    def __init__(self, options: TrackT, context: StageContext) -> None:
        super().__init__(options, context)
        self._trackers: dict[str, Tracker] = {}
        self._seen: dict[str, LastSeen] = {}  # per source, for frames a gated detector skipped

    def make_tracker(self) -> Tracker:
        return self.tracker(**self.options.model_dump(exclude={"smooth_boxes"}))

    def process(self, frame: Frame) -> Frame | None:
        tracker = self._trackers.get(frame.source)
        if tracker is None:
            tracker = self._trackers[frame.source] = self.make_tracker()
        seen = self._seen.setdefault(frame.source, LastSeen())
        dets = frame.detections
        if frame.predicted:  # no detector ran: report the followed tracks where they should be now
            return frame.with_detections(Detections.concat([dets, seen.predicted(tracker)]))
        dets = dets.with_track_ids(tracker.update(dets.xyxy, dets.score, dets.class_id))
        if self.smooth_boxes:
            dets = dets.replace(xyxy=tracker.smoothed.astype(np.float32))
        seen.remember(dets, tracker)
        self.context.report.setdefault("track_ids", {})[frame.source] = tracker.table.next_id - 1
        return frame.with_detections(dets)

    @property
    def smooth_boxes(self) -> bool:
        """Whether tracked boxes are replaced by the tracker's estimate (trackers with a motion model)."""
        return False

    def end_stream(self, source: str) -> list[Frame]:
        # Drop the tracks but keep the tracker: its ID counter must not start again at 1.
        if source in self._trackers:
            self._trackers[source].reset()
        return []


class _KalmanTrackStage(_TrackStage[KalmanTrackT]):
    """A tracker stage whose tracker has a motion model, so its boxes can replace the detections'."""

    @property
    def smooth_boxes(self) -> bool:
        return self.options.smooth_boxes


@register("track.iou")
class IouTrackStage(_TrackStage[IouTrackOptions]):
    """IoU tracker: matches each detection to the last box of a track (no motion model)."""

    tracker = IouTracker


@register("track.sort")
class SortStage(_KalmanTrackStage[SortOptions]):
    """SORT: Kalman-predicted boxes matched to detections by optimal IoU assignment."""

    tracker = SortTracker


@register("track.bytetrack")
class ByteTrackStage(_KalmanTrackStage[ByteTrackOptions]):
    """ByteTrack: high-score detections first, then low-score ones to the remaining tracks."""

    tracker = ByteTracker
