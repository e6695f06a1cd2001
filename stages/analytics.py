"""`analytics.line` and `analytics.zone`: count line crossings, zone occupancy and dwell.

Thin shells over `stages.zones`. They work on tracked detections only (track_id >= 0), so a
`track.*` stage must run before them; each source has its own state. Results are `Event`s
on the frame and running totals in the run summary (`context.report`).

Every event carries its geometry in pixels and the live counts, so a renderer can draw from
events alone (`line_counts` / `zone_occupancy` are also sent on the first frame of each
source): data `name` (line or zone name), `line` or `zone` (points [[x, y], ...]) and
`counts` (flat {key: number}: {"in": n, "out": n} for a line, {zone name: occupancy} for the
zones of one stage).
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
from pydantic import Field, field_validator

from pipeline.frame import Event, Frame
from pipeline.stage import Options, Stage, StageContext, register
from stages.zones import Anchor, LineCounter, ZoneMonitor, anchor_points, to_pixels

# Warn when this many frames had detections but none had a track ID (a tracker is missing).
_UNTRACKED_WARN_FRAMES = 10

Point = tuple[float, float]


class AnalyticsOptions(Options):
    """Options shared by line and zone analytics. Distances are in pixels, times in frames."""

    normalized: bool = Field(
        False, description="points are given as 0..1 of the frame width/height, not pixels"
    )
    classes: list[str] | None = Field(
        None, description="only count detections with these labels (default: all)"
    )
    anchor: Anchor = Field(
        "bottom_center", description="point of the box that must cross: bottom_center, center, top_center"
    )
    min_distance: float = Field(
        10.0, ge=0, description="px the anchor must be past the line/border for a change to count"
    )
    min_frames: int = Field(
        2, ge=1, description="consecutive frames the anchor must stay there for a change to count"
    )
    max_age: int = Field(
        30,
        ge=0,
        le=10_000,
        description="frames a track may go unseen before it is forgotten (zones: it exits; at most 10000)",
    )


class LineOptions(AnalyticsOptions):
    """Options of `analytics.line`: count tracks crossing a polyline, per direction and label.

    Looking from the first point to the last, crossing to the right-hand side is `in`, to the
    left-hand side `out` (for a line drawn left to right, going down the image is `in`).
    """

    points: list[Point] = Field(
        ..., min_length=2, description="polyline [[x, y], ...] in px (or 0..1 with normalized)"
    )
    name: str | None = Field(None, description="line name in events and the summary (default: the stage id)")


class ZoneOptions(AnalyticsOptions):
    """Options of `analytics.zone`: occupancy of polygon zones and dwell time of tracks in them."""

    zones: dict[str, list[Point]] = Field(
        ..., min_length=1, description="named polygons {name: [[x, y], ...]} in px (or 0..1 with normalized)"
    )
    min_distance: float = Field(
        5.0, ge=0, description="px the anchor must be inside/outside the border for a change"
    )

    @field_validator("zones")
    @classmethod
    def _polygons(cls, zones: dict[str, list[Point]]) -> dict[str, list[Point]]:
        for name, points in zones.items():
            if len(points) < 3:
                raise ValueError(f"zone {name!r} needs at least 3 points, got {len(points)}")
        return zones


def _points_record(points: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in points]


AnalyticsT = TypeVar("AnalyticsT", bound=AnalyticsOptions)


class _AnalyticsStage(Stage[AnalyticsT]):
    """Per-source state and the selection of tracked detections."""

    stateful = True

    def __init__(self, options: AnalyticsT, context: StageContext) -> None:
        super().__init__(options, context)
        self._state: dict[str, Any] = {}
        self._untracked_frames = 0
        self._seen_tracked = False

    def _tracked(self, frame: Frame) -> tuple[list[int], np.ndarray, list[str]]:
        """Track IDs, anchors (N, 2) and labels of the tracked detections that count."""
        o = self.options
        dets = frame.detections
        keep = dets.track_id >= 0
        if keep.any():
            self._seen_tracked = True
        elif len(dets) and not self._seen_tracked:
            self._untracked_frames += 1
            if self._untracked_frames == _UNTRACKED_WARN_FRAMES:
                self.log.warning(
                    "%s: detections have no track_id and are ignored; put a track.* stage before %s",
                    self.kind,
                    self.id,
                )
        if o.classes is not None:
            keep &= np.isin(dets.label.astype(str), o.classes)
        sel = dets[keep]
        return sel.track_id.tolist(), anchor_points(sel.xyxy, o.anchor), [str(x) for x in sel.label]

    def _pixels(self, frame: Frame, points: Any) -> np.ndarray:
        h, w = frame.image.shape[:2]
        return to_pixels(points, w, h, self.options.normalized)


@register("analytics.line")
class LineStage(_AnalyticsStage[LineOptions]):
    """Counts tracks crossing a line (polyline), per direction (in/out) and label.

    Looking from the first point to the last, moving to the right-hand side is `in`, to the
    left-hand side `out` (a line drawn left to right: going down the image is `in`).
    Events: `line_cross` (track_id; data direction, label, name, line, counts, by_label) on
    each crossing; `line_counts` (name, line, counts, by_label) on the first frame of a source.
    Summary: counts[source] = {"in": {label: n}, "out": {label: n}}, total[source].
    """

    def process(self, frame: Frame) -> Frame | None:
        o = self.options
        counter = self._state.get(frame.source)
        events = []
        if counter is None:
            counter = self._state[frame.source] = LineCounter(
                self._pixels(frame, o.points), o.min_distance, o.min_frames, o.max_age
            )
            events.append(Event("line_counts", self.id, None, self._data(counter)))
        ids, anchors, labels = self._tracked(frame)
        for c in counter.update(ids, anchors, labels):
            data = {"direction": c.direction, "label": c.label, **self._data(counter)}
            events.append(Event("line_cross", self.id, c.track_id, data))
        report = self.context.report
        report.setdefault("counts", {})[frame.source] = {d: dict(n) for d, n in counter.counts.items()}
        report.setdefault("total", {})[frame.source] = counter.totals
        return frame.add_events(events) if events else frame

    def _data(self, counter: LineCounter) -> dict[str, Any]:
        return {
            "name": self.options.name or self.id,
            "line": _points_record(counter.points),
            "counts": counter.totals,
            "by_label": {d: dict(n) for d, n in counter.counts.items()},
        }

    def end_stream(self, source: str) -> list[Frame]:
        if source in self._state:
            self._state[source].reset_tracks()  # counts keep going if the source comes back
        return []


@register("analytics.zone")
class ZoneStage(_AnalyticsStage[ZoneOptions]):
    """Occupancy of named polygon zones and dwell time (seconds, from frame.pts) of each track.

    Events: `zone_enter` (track_id; data name, label, pts), `zone_exit` (+ dwell in s);
    `zone_occupancy` (name, count, by_label, track_ids) when a zone's occupancy changes and
    on the first frame of each source. All also carry `zone` (points) and `counts`.
    Summary: zones[source][zone] = visits, dwell_total_s, dwell_max_s, max_occupancy.
    """

    def process(self, frame: Frame) -> Frame | None:
        o = self.options
        state = self._state.get(frame.source)
        if state is None:
            zones = {name: self._pixels(frame, pts) for name, pts in o.zones.items()}
            shown: dict[str, list[int]] = {}
            state = self._state[frame.source] = (
                ZoneMonitor(zones, o.min_distance, o.min_frames, o.max_age),
                shown,
            )
        monitor, shown = state  # shown: zone -> the track ids last reported inside it
        ids, anchors, labels = self._tracked(frame)
        changes = monitor.update(ids, anchors, labels, frame.pts)
        self._record(frame.source, changes)
        inside = monitor.occupancy()
        counts = {zone: len(members) for zone, members in inside.items()}

        def data(zone: str, **extra: Any) -> dict[str, Any]:
            return {"name": zone, **extra, "zone": _points_record(monitor.zones[zone]), "counts": counts}

        events = []
        for c in changes:
            extra: dict[str, Any] = {"label": c.label, "pts": round(c.pts, 4)}
            if c.dwell is not None:
                extra["dwell"] = round(c.dwell, 4)
            events.append(Event(f"zone_{c.kind}", self.id, c.track_id, data(c.zone, **extra)))
        by_label = monitor.occupancy_by_label()
        for zone, members in inside.items():
            stats = self._stats(frame.source, zone)
            stats["max_occupancy"] = max(stats["max_occupancy"], len(members))
            if shown.get(zone) != members:
                shown[zone] = members
                occupancy = data(zone, count=len(members), by_label=by_label[zone], track_ids=members)
                events.append(Event("zone_occupancy", self.id, None, occupancy))
        return frame.add_events(events) if events else frame

    def _stats(self, source: str, zone: str) -> dict[str, Any]:
        per_source = self.context.report.setdefault("zones", {}).setdefault(source, {})
        return per_source.setdefault(
            zone, {"visits": 0, "dwell_total_s": 0.0, "dwell_max_s": 0.0, "max_occupancy": 0}
        )

    def _record(self, source: str, changes: list[Any]) -> None:
        for c in changes:
            stats = self._stats(source, c.zone)
            if c.kind == "enter":
                stats["visits"] += 1
            elif c.dwell is not None:
                stats["dwell_total_s"] = round(stats["dwell_total_s"] + c.dwell, 4)
                stats["dwell_max_s"] = round(max(stats["dwell_max_s"], c.dwell), 4)

    def end_stream(self, source: str) -> list[Frame]:
        # No frame left to carry events: the last dwells only reach the summary.
        state = self._state.pop(source, None)
        if state is not None:
            self._record(source, state[0].close())
        return []
