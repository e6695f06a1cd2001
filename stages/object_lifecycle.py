"""Lifecycle of tracked objects, per source: new, update (label, zones or attributes changed), end.

A pure state machine fed one frame of tracked detections at a time (track id, label,
compared attributes) and the zone changes the analytics stages reported; no images, no I/O.
The `events` stage turns its changes into `OutEvent`s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrackedObject:
    """What is known of one track: the last values seen and the zones it is in."""

    track_id: int
    label: str
    attributes: dict[str, Any]
    first_pts: float
    last_pts: float
    last_tick: int
    zones: dict[str, float] = field(default_factory=dict)  # zone -> pts it entered
    dwelled: set[str] = field(default_factory=set)  # zones whose dwell event was sent this visit


@dataclass(frozen=True)
class ObjectChange:
    """kind: new | update | end | dwell; changed: what an update changed (label, zones, attribute
    names); zone: the zone of a dwell."""

    kind: str
    track_id: int
    changed: tuple[str, ...] = ()
    zone: str | None = None


@dataclass
class ObjectLifecycle:
    """Objects of one source.

    max_age: frames a track may go unseen before it ends. dwell_s: seconds (pts) in a zone after
    which one `dwell` change is given per visit (None: never).
    """

    max_age: int = 30
    dwell_s: float | None = None
    objects: dict[int, TrackedObject] = field(default_factory=dict)
    _tick: int = 0

    def update(
        self,
        pts: float,
        track_ids: Sequence[int],
        labels: Sequence[str],
        attributes: Sequence[Mapping[str, Any]],
        zone_changes: Sequence[tuple[int, str, bool]] = (),
    ) -> list[ObjectChange]:
        """One frame: tracked detections (parallel lists) and zone changes (track, zone, entered)."""
        self._tick += 1
        new: list[int] = []
        changed: dict[int, list[str]] = {}
        for tid, label, attrs in zip(track_ids, labels, attributes, strict=True):
            obj = self.objects.get(tid)
            if obj is None:
                self.objects[tid] = TrackedObject(tid, label, dict(attrs), pts, pts, self._tick)
                new.append(tid)
                continue
            diff = ["label"] if label != obj.label else []
            diff += sorted(k for k, v in attrs.items() if obj.attributes.get(k) != v)
            obj.label, obj.last_pts, obj.last_tick = label, pts, self._tick
            obj.attributes.update(attrs)
            if diff:
                changed[tid] = diff
        for tid, zone, entered in zone_changes:
            obj = self.objects.get(tid)
            if obj is None:
                continue
            if entered:
                obj.zones.setdefault(zone, pts)
            else:
                obj.zones.pop(zone, None)
                obj.dwelled.discard(zone)
            if tid not in new and "zones" not in changed.setdefault(tid, []):
                changed[tid].append("zones")
        out = [ObjectChange("new", tid) for tid in new]
        out += [ObjectChange("update", tid, tuple(diff)) for tid, diff in changed.items()]
        out += self._dwells(pts)
        gone = [t for t, o in self.objects.items() if self._tick - o.last_tick > self.max_age]
        return out + [ObjectChange("end", t) for t in gone]

    def forget(self, track_ids: Sequence[int]) -> None:
        """Drop ended objects (after their end events were built from them)."""
        for tid in track_ids:
            self.objects.pop(tid, None)

    def _dwells(self, pts: float) -> list[ObjectChange]:
        if self.dwell_s is None:
            return []
        out = []
        for obj in self.objects.values():
            for zone, since in obj.zones.items():
                if zone not in obj.dwelled and pts - since >= self.dwell_s:
                    obj.dwelled.add(zone)
                    out.append(ObjectChange("dwell", obj.track_id, zone=zone))
        return out
