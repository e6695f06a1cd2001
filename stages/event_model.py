"""The one event model of every event sink (`sink.mqtt`, `sink.webhook`, `sink.snapshots`, `sink.clips`).

The `events` stage turns what the tracker and the analytics stages found into `OutEvent`s and
puts them on the frame as `Event(type, stage, track_id, data)`; their `data` always has an `id`
(raw analytics events never do), which is how sinks tell them apart. The JSON form
(`OutEvent.to_json`, the same as `Event.to_record()` of the frame event) is a public schema:
fields are only ever added (`EVENT_SCHEMA`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.frame import Event, Frame, to_jsonable

OBJECT_TYPES = ("object_new", "object_update", "object_end")
ANALYTICS_TYPES = ("line_cross", "zone_enter", "zone_leave", "dwell")
EVENT_TYPES = OBJECT_TYPES + ANALYTICS_TYPES


def new_event_id(wall: float) -> str:
    """Unique, sortable by time and usable as a file name: `<ms since epoch>-<8 hex>`."""
    return f"{int(wall * 1000):d}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class OutEvent:
    """One event as it leaves the pipeline.

    pts: media time (s) of the frame it was found on; wall: that frame's capture time (epoch s).
    box: [x1, y1, x2, y2] px; zones: the zones the track is in; attributes: the detection's
    (emotion, age, gender, ... where present); data: what is specific to the type (line name
    and direction, zone and dwell, the fields an update changed); snapshot, clip: file paths
    relative to the run's output folder, set by `sink.snapshots` / `sink.clips` when they ran
    before; clip_offset_s: where in the clip the event happens.
    """

    id: str
    type: str
    stage: str
    source: str
    pts: float
    wall: float
    track_id: int | None = None
    label: str | None = None
    score: float | None = None
    box: tuple[float, float, float, float] | None = None
    zones: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    snapshot: str | None = None
    clip: str | None = None
    clip_offset_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The public JSON form (see `EVENT_SCHEMA`); optional fields appear when set."""
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "stage": self.stage,
            "source": self.source,
            "track_id": self.track_id,
            "label": self.label,
            "score": None if self.score is None else round(float(self.score), 4),
            "box": None if self.box is None else [round(float(x), 2) for x in self.box],
            "zones": list(self.zones),
            "attributes": to_jsonable(dict(self.attributes)),
            "data": to_jsonable(dict(self.data)),
            "pts": round(self.pts, 4),
            "wall": round(self.wall, 6),
        }
        for name in ("snapshot", "clip", "clip_offset_s"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 4) if isinstance(value, float) else value
        return out

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> OutEvent:
        box = record.get("box")
        return cls(
            id=str(record["id"]),
            type=str(record["type"]),
            stage=str(record.get("stage", "")),
            source=str(record.get("source", "")),
            pts=float(record.get("pts", 0.0)),
            wall=float(record.get("wall", 0.0)),
            track_id=record.get("track_id"),
            label=record.get("label"),
            score=record.get("score"),
            box=None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            zones=tuple(record.get("zones", ())),
            attributes=dict(record.get("attributes", {})),
            data=dict(record.get("data", {})),
            snapshot=record.get("snapshot"),
            clip=record.get("clip"),
            clip_offset_s=record.get("clip_offset_s"),
        )

    def to_frame_event(self) -> Event:
        """The frame's form: `Event.to_record()` of it gives back `to_json()`."""
        body = self.to_json()
        for key in ("type", "stage", "track_id"):
            del body[key]
        return Event(self.type, self.stage, self.track_id, body)

    def with_files(self, **paths: Any) -> OutEvent:
        """A copy with snapshot / clip / clip_offset_s set."""
        return replace(self, **paths)


def is_out_event(event: Event) -> bool:
    """Whether a frame event is of the event model (made by the `events` stage)."""
    return isinstance(event.data.get("id"), str) and "wall" in event.data


def out_event_records(frame: Frame, types: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The JSON form of the frame's events of the event model (optionally only some types).

    Cheaper than `Event.to_record()`: their data is JSON already (made by `OutEvent.to_json`).
    """
    return [
        {**e.data, "type": e.type, "stage": e.stage, "track_id": e.track_id}
        for e in frame.events
        if is_out_event(e) and (types is None or e.type in types)
    ]


def out_events(frame: Frame, types: Sequence[str] | None = None) -> list[OutEvent]:
    """The frame's events of the event model, optionally only those of some types."""
    return [OutEvent.from_json(record) for record in out_event_records(frame, types)]


def replace_out_events(frame: Frame, changed: Mapping[str, OutEvent]) -> Frame:
    """The frame with the events whose id is in `changed` replaced (other events untouched)."""
    if not changed:
        return frame
    events = tuple(
        changed[e.data["id"]].to_frame_event() if is_out_event(e) and e.data["id"] in changed else e
        for e in frame.events
    )
    return frame.replace(events=events)


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}

EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "vigil event",
    "type": "object",
    "required": ["id", "type", "stage", "source", "track_id", "label", "zones", "attributes", "pts", "wall"],
    "properties": {
        "id": {"type": "string", "description": "unique; the webhook idempotency key and file name stem"},
        "type": {"enum": list(EVENT_TYPES)},
        "stage": {"type": "string", "description": "id of the `events` stage that made it"},
        "source": {"type": "string"},
        "track_id": {"type": ["integer", "null"]},
        "label": _STRING_OR_NULL,
        "score": _NUMBER_OR_NULL,
        "box": {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
        "zones": {"type": "array", "items": {"type": "string"}},
        "attributes": {"type": "object", "description": "emotion, age, gender, ... where present"},
        "data": {"type": "object", "description": "type-specific: name, direction, zone, dwell, changed"},
        "pts": {"type": "number", "description": "media time in s"},
        "wall": {"type": "number", "description": "capture time, s since the epoch"},
        "snapshot": {"type": "string", "description": "JPEG path relative to the output folder"},
        "clip": {"type": "string", "description": "MP4 path relative to the output folder"},
        "clip_offset_s": {"type": "number", "description": "time of the event inside the clip"},
    },
}
