"""`events`: the event model for the event sinks, from the tracker's and the analytics' output.

Put it after `track.*` and `analytics.*` and before the event sinks. On each frame it adds
`OutEvent`s (`stages.event_model`) to the frame's events: `object_new`, `object_update` (label,
zones or a compared attribute changed), `object_end` (unseen for `max_age` frames), `dwell`
(in a zone for `dwell_s`), and one event per `line_cross`, `zone_enter` and `zone_exit` (as
`zone_leave`) of the analytics stages. The analytics' own events stay on the frame unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydantic import Field

from pipeline.frame import Event, Frame, to_jsonable
from pipeline.stage import Options, Stage, StageContext, register
from stages.event_model import OutEvent, new_event_id
from stages.object_lifecycle import ObjectChange, ObjectLifecycle

_ANALYTICS = {"line_cross": "line_cross", "zone_enter": "zone_enter", "zone_exit": "zone_leave"}


class EventsOptions(Options):
    """Options of `events`. Times are in frames of the source unless they say s."""

    objects: bool = Field(True, description="emit object_new / object_update / object_end for tracks")
    analytics: bool = Field(True, description="emit line_cross, zone_enter, zone_leave from analytics.*")
    labels: list[str] | None = Field(None, description="only objects with these labels (default: all)")
    max_age: int = Field(
        30, ge=0, le=10_000, description="frames a track may go unseen before its object_end (at most 10000)"
    )
    dwell_s: float | None = Field(
        None, gt=0, description="seconds (pts) in a zone after which one `dwell` event is sent per visit"
    )
    end_events: bool = Field(
        True,
        description="hold each source's newest frame back by one, so objects still tracked when its "
        "stream ends get their object_end on its last frame (one frame of latency)",
    )
    compare_attributes: list[str] = Field(
        ["emotion", "gender"],
        description="attributes whose change sends object_update (numbers such as age drift every frame)",
    )


@dataclass
class _Sighting:
    """The last box, score and attributes of a track (an ended track is not on the frame)."""

    box: tuple[float, float, float, float]
    score: float
    attributes: dict[str, Any]


@register("events")
class EventsStage(Stage[EventsOptions]):
    """Adds the event model's events to each frame (see the module doc); frames otherwise unchanged.

    Summary: events[type] = number sent.
    """

    stateful = True

    def __init__(self, options: EventsOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self._objects: dict[str, ObjectLifecycle] = {}
        self._seen: dict[str, dict[int, _Sighting]] = {}
        self._held: dict[str, Frame] = {}  # with end_events: each source's newest frame

    def process(self, frame: Frame) -> Frame | None:
        out = self._with_events(frame)
        if not self.options.end_events:
            return out
        previous, self._held[frame.source] = self._held.get(frame.source), out
        return previous  # None for a source's first frame: it goes on with the next one

    def _with_events(self, frame: Frame) -> Frame:
        o = self.options
        life = self._objects.get(frame.source)
        if life is None:
            life = self._objects[frame.source] = ObjectLifecycle(o.max_age, o.dwell_s)
        seen = self._seen.setdefault(frame.source, {})
        dets = frame.detections
        keep = dets.track_id >= 0
        if o.labels is not None:
            keep &= np.isin(dets.label.astype(str), o.labels)
        rows = np.flatnonzero(keep)
        ids = [int(dets.track_id[i]) for i in rows]
        for tid, i in zip(ids, rows, strict=True):
            attrs = {k: to_jsonable(v[i]) for k, v in dets.attributes.items()}
            box = tuple(float(x) for x in dets.xyxy[i])
            seen[tid] = _Sighting((box[0], box[1], box[2], box[3]), float(dets.score[i]), attrs)
        compared = [
            {k: seen[t].attributes[k] for k in o.compare_attributes if k in seen[t].attributes} for t in ids
        ]
        zone_changes = [
            (int(e.track_id), str(e.data.get("name", "")), e.type == "zone_enter")
            for e in frame.events
            if e.type in ("zone_enter", "zone_exit") and e.track_id is not None
        ]
        changes = life.update(frame.pts, ids, [str(dets.label[i]) for i in rows], compared, zone_changes)
        out = [self._object_event(frame, life, seen, c) for c in changes] if o.objects else []
        if o.analytics:
            out += [self._analytics_event(frame, life, seen, e) for e in frame.events if e.type in _ANALYTICS]
        ended = [c.track_id for c in changes if c.kind == "end"]
        life.forget(ended)
        for tid in ended:
            seen.pop(tid, None)
        return self._add(frame, out)

    def _add(self, frame: Frame, events: list[OutEvent]) -> Frame:
        counts = self.context.report.setdefault("events", {})
        for e in events:
            counts[e.type] = counts.get(e.type, 0) + 1
        return frame.add_events(e.to_frame_event() for e in events) if events else frame

    def _event(
        self, frame: Frame, life: ObjectLifecycle, seen: dict[int, _Sighting], type_: str, tid: int | None
    ) -> OutEvent:
        obj = life.objects.get(tid) if tid is not None else None
        last = seen.get(tid) if tid is not None else None
        return OutEvent(
            id=new_event_id(frame.wall),
            type=type_,
            stage=self.id,
            source=frame.source,
            pts=frame.pts,
            wall=frame.wall,
            track_id=tid,
            label=obj.label if obj else None,
            score=last.score if last else None,
            box=last.box if last else None,
            zones=tuple(sorted(obj.zones)) if obj else (),
            attributes=last.attributes if last else {},
        )

    def _object_event(
        self, frame: Frame, life: ObjectLifecycle, seen: dict[int, _Sighting], change: ObjectChange
    ) -> OutEvent:
        obj = life.objects[change.track_id]
        data: dict[str, Any] = {}
        if change.kind == "update":
            data = {"changed": list(change.changed)}
        elif change.kind == "end":
            data = {
                "first_pts": obj.first_pts,
                "last_pts": obj.last_pts,
                "duration_s": obj.last_pts - obj.first_pts,
            }
        elif change.kind == "dwell" and change.zone is not None:
            data = {"zone": change.zone, "dwell": frame.pts - obj.zones[change.zone]}
        type_ = "dwell" if change.kind == "dwell" else f"object_{change.kind}"
        return replace(self._event(frame, life, seen, type_, change.track_id), data=data)

    def _analytics_event(
        self, frame: Frame, life: ObjectLifecycle, seen: dict[int, _Sighting], raw: Event
    ) -> OutEvent:
        event = self._event(frame, life, seen, _ANALYTICS[raw.type], raw.track_id)
        if event.label is None:
            event = replace(event, label=raw.data.get("label"))
        if raw.type == "line_cross":
            data = {"line": raw.data.get("name"), "direction": raw.data.get("direction")}
        else:
            data = {"zone": raw.data.get("name"), "since_pts": raw.data.get("pts")}
            if "dwell" in raw.data:
                data["dwell"] = raw.data["dwell"]
        return replace(event, data={**data, "from_stage": raw.stage})

    def end_stream(self, source: str) -> list[Frame]:
        """The held last frame goes out with an object_end for every object still tracked."""
        life, seen = self._objects.pop(source, None), self._seen.pop(source, {})
        held = self._held.pop(source, None)
        if held is None:
            return []
        ends: list[OutEvent] = []
        if life is not None and self.options.objects:
            ends = [
                self._object_event(held, life, seen, ObjectChange("end", t)) for t in sorted(life.objects)
            ]
        return [self._add(held, ends)]
