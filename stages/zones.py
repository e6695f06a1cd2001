"""Line and zone geometry and counting: pure functions and small state machines, no frames.

Coordinates are pixels of the image, x to the right, y down. The side of a polyline is named
as seen on screen looking from its first point towards its last: a track that moves to the
right-hand side crosses `in`, to the left-hand side `out` (reverse the points to swap).

Against jitter, a track's side (of a line) or state (in/out of a zone) changes only after its
anchor has been at least `min_distance` px past the line or border for `min_frames`
consecutive frames; a line crossing also needs the anchor's path to have gone through the
polyline itself (walking around its end does not count). The analytics stages
(`analytics.line`, `analytics.zone`) and the renderer use these functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Anchor = Literal["bottom_center", "center", "top_center"]
DIRECTIONS = ("in", "out")


def anchor_points(xyxy: np.ndarray, anchor: Anchor = "bottom_center") -> np.ndarray:
    """The point of each box (N, 4) that stands for its object: (N, 2) pixels."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    y = {"bottom_center": xyxy[:, 3], "center": (xyxy[:, 1] + xyxy[:, 3]) / 2, "top_center": xyxy[:, 1]}[
        anchor
    ]
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, y], axis=1)


def to_pixels(points: Any, width: int, height: int, normalized: bool) -> np.ndarray:
    """(M, 2) points in pixels; with `normalized` they are given as 0..1 of the frame size."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return pts * np.array([width, height], np.float64) if normalized else pts


def _segments(polyline: np.ndarray, closed: bool) -> tuple[np.ndarray, np.ndarray]:
    poly = np.asarray(polyline, np.float64).reshape(-1, 2)
    end = np.roll(poly, -1, axis=0) if closed else poly[1:]
    return (poly, end) if closed else (poly[:-1], end)


def _nearest(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (N, S) from each point to each segment a->b, and the cross product sign term."""
    ab = b - a
    ap = points[:, None, :] - a[None, :, :]
    length2 = np.maximum((ab**2).sum(axis=1), 1e-12)
    t = np.clip((ap * ab).sum(axis=2) / length2, 0.0, 1.0)
    dist = np.hypot(*np.moveaxis(ap - t[..., None] * ab, 2, 0))
    cross = ab[None, :, 0] * ap[..., 1] - ab[None, :, 1] * ap[..., 0]
    return dist, cross


def signed_distance_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance (N,) in px from each point to the polyline; > 0 on its right-hand side (in).

    The side is that of the nearest segment (beyond the ends, of the end segment's line).
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)
    a, b = _segments(polyline, closed=False)
    if len(points) == 0:
        return np.zeros(0)
    dist, cross = _nearest(points, a, b)
    j = np.argmin(dist, axis=1)
    rows = np.arange(len(points))
    return np.where(cross[rows, j] < 0, -1.0, 1.0) * dist[rows, j]


def crosses_polyline(start: np.ndarray, end: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Whether each step start -> end (N, 2 each) touches or crosses any segment of the polyline."""
    p, q = np.asarray(start, np.float64).reshape(-1, 1, 2), np.asarray(end, np.float64).reshape(-1, 1, 2)
    a, b = _segments(polyline, closed=False)

    def orient(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (v[..., 0] - u[..., 0]) * (w[..., 1] - u[..., 1]) - (v[..., 1] - u[..., 1]) * (
            w[..., 0] - u[..., 0]
        )

    straddle = (orient(p, q, a) * orient(p, q, b) <= 0) & (orient(a, b, p) * orient(a, b, q) <= 0)
    # Bounding boxes must overlap too, or collinear but disjoint segments would pass.
    boxes = (np.minimum(p, q) <= np.maximum(a, b)).all(axis=2) & (np.maximum(p, q) >= np.minimum(a, b)).all(
        axis=2
    )
    return (straddle & boxes).any(axis=1)


def point_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule: (N,) bool, True where the point is inside the polygon (M, 2)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    a, b = _segments(polygon, closed=True)
    px, py = pts[:, None, 0], pts[:, None, 1]
    spans = (a[None, :, 1] > py) != (b[None, :, 1] > py)
    dy = np.where(b[:, 1] == a[:, 1], 1.0, b[:, 1] - a[:, 1])
    x_cross = a[None, :, 0] + (py - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / dy[None, :]
    return ((spans & (px < x_cross)).sum(axis=1) % 2).astype(bool)


def signed_distance_to_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distance (N,) in px from each point to the polygon's border; > 0 inside, < 0 outside."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros(0)
    a, b = _segments(polygon, closed=True)
    dist = _nearest(pts, a, b)[0].min(axis=1)
    return np.where(point_in_polygon(pts, polygon), dist, -dist)


def observe(signed_distance: np.ndarray, min_distance: float) -> np.ndarray:
    """-1 / +1 where the point is at least `min_distance` px on that side, 0 in the band between."""
    d = np.asarray(signed_distance, np.float64)
    return np.where(d >= min_distance, 1, np.where(d <= -min_distance, -1, 0)).astype(np.int8)


@dataclass
class _Debounced:
    """A track's settled side (-1, 0 unknown, +1) and the run of observations that may change it."""

    side: int = 0
    pending: int = 0
    run: int = 0
    run_start: float = 0.0  # pts of the first frame of the pending run
    crossed: bool = False  # the path went through the line since the settled side was seen
    last: tuple[float, float] | None = None
    last_seen: int = 0  # update counter value
    last_pts: float = 0.0
    since: float = 0.0  # pts at which the settled side began
    label: str = ""

    def observe(self, obs: int, min_frames: int, pts: float) -> bool:
        """Feed one observation; True when the settled side changes."""
        if obs == 0:
            self.run = 0
        elif obs == self.side:
            self.run, self.crossed = 0, False
        else:
            if obs != self.pending or self.run == 0:
                self.pending, self.run, self.run_start = obs, 0, pts
            self.run += 1
            if self.run >= min_frames:
                self.side, self.run, self.since = obs, 0, self.run_start
                return True
        return False


@dataclass(frozen=True)
class Crossing:
    """A track crossed the line: direction "in" (to the right-hand side) or "out"."""

    track_id: int
    direction: str
    label: str


def _empty_counts() -> dict[str, dict[str, int]]:
    return {d: {} for d in DIRECTIONS}


@dataclass
class LineCounter:
    """Counts tracks crossing a polyline (pixels), per direction and label, with hysteresis.

    min_distance: px the anchor must be past the line for its new side to count.
    min_frames: consecutive frames it must stay there.
    max_age: frames a track may go unseen before its state is forgotten.
    """

    points: np.ndarray
    min_distance: float = 10.0
    min_frames: int = 2
    max_age: int = 30
    counts: dict[str, dict[str, int]] = field(default_factory=_empty_counts)
    _tracks: dict[int, _Debounced] = field(default_factory=dict, repr=False)
    _tick: int = 0

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, np.float64).reshape(-1, 2)
        if len(self.points) < 2:
            raise ValueError("a line needs at least 2 points")

    @property
    def totals(self) -> dict[str, int]:
        return {d: sum(self.counts[d].values()) for d in DIRECTIONS}

    def update(self, track_ids: Sequence[int], anchors: np.ndarray, labels: Sequence[str]) -> list[Crossing]:
        """One frame of tracked anchors (N, 2) -> the crossings completed on this frame."""
        self._tick += 1
        anchors = np.asarray(anchors, np.float64).reshape(-1, 2)
        obs = observe(signed_distance_to_polyline(anchors, self.points), self.min_distance)
        states = [self._tracks.setdefault(int(t), _Debounced()) for t in track_ids]
        prev = np.array([s.last if s.last is not None else a for s, a in zip(states, anchors, strict=True)])
        stepped = crosses_polyline(prev, anchors, self.points) if len(anchors) else np.zeros(0, bool)
        out = []
        for i, st in enumerate(states):
            st.crossed |= bool(stepped[i]) and st.last is not None
            was, crossed = st.side, st.crossed
            if st.observe(int(obs[i]), self.min_frames, 0.0):
                st.crossed = False
                if was != 0 and crossed:
                    direction = "in" if st.side > 0 else "out"
                    label = str(labels[i])
                    self.counts[direction][label] = self.counts[direction].get(label, 0) + 1
                    out.append(Crossing(int(track_ids[i]), direction, label))
            st.last, st.last_seen = (float(anchors[i, 0]), float(anchors[i, 1])), self._tick
        self._tracks = {t: s for t, s in self._tracks.items() if self._tick - s.last_seen <= self.max_age}
        return out

    def reset_tracks(self) -> None:
        """Forget every track's state (end of stream); the counts stay."""
        self._tracks.clear()


@dataclass(frozen=True)
class ZoneChange:
    """A track entered or left a zone at `pts` (s); `dwell` (s) is the time it spent inside."""

    zone: str
    track_id: int
    kind: str  # "enter" | "exit"
    label: str
    pts: float
    dwell: float | None = None


@dataclass
class ZoneMonitor:
    """Which tracks are inside which named polygon zones (pixels), with hysteresis and dwell.

    min_distance: px the anchor must be inside (or outside) the border for the state to change.
    min_frames: consecutive frames it must stay so; the change is dated at the first of them.
    max_age: frames a track may go unseen; then it leaves its zones, dated at its last sighting.
    """

    zones: Mapping[str, np.ndarray]
    min_distance: float = 0.0
    min_frames: int = 2
    max_age: int = 30
    _tracks: dict[str, dict[int, _Debounced]] = field(default_factory=dict, repr=False)
    _tick: int = 0

    def __post_init__(self) -> None:
        self.zones = {name: np.asarray(p, np.float64).reshape(-1, 2) for name, p in self.zones.items()}
        for name, polygon in self.zones.items():
            if len(polygon) < 3:
                raise ValueError(f"zone {name!r} needs at least 3 points")
        self._tracks = {name: {} for name in self.zones}

    def occupancy(self) -> dict[str, list[int]]:
        """Track IDs inside each zone, sorted."""
        return {z: sorted(t for t, s in tracks.items() if s.side > 0) for z, tracks in self._tracks.items()}

    def occupancy_by_label(self) -> dict[str, dict[str, int]]:
        """Number of tracks inside each zone, per label."""
        out: dict[str, dict[str, int]] = {}
        for zone, tracks in self._tracks.items():
            out[zone] = {}
            for s in tracks.values():
                if s.side > 0:
                    out[zone][s.label] = out[zone].get(s.label, 0) + 1
        return out

    def update(
        self, track_ids: Sequence[int], anchors: np.ndarray, labels: Sequence[str], pts: float
    ) -> list[ZoneChange]:
        """One frame of tracked anchors (N, 2) at media time `pts` (s) -> enters and exits."""
        self._tick += 1
        anchors = np.asarray(anchors, np.float64).reshape(-1, 2)
        out = []
        for zone, polygon in self.zones.items():
            obs = observe(signed_distance_to_polygon(anchors, polygon), self.min_distance)
            tracks = self._tracks[zone]
            for i, tid in enumerate(int(t) for t in track_ids):
                st = tracks.setdefault(tid, _Debounced(side=-1))
                st.last_seen, st.last_pts, st.label = self._tick, pts, str(labels[i])
                entered = st.since
                if st.observe(int(obs[i]), self.min_frames, pts):
                    if st.side > 0:
                        out.append(ZoneChange(zone, tid, "enter", st.label, st.since))
                    else:
                        out.append(ZoneChange(zone, tid, "exit", st.label, st.since, st.since - entered))
            gone = [t for t, s in tracks.items() if self._tick - s.last_seen > self.max_age]
            out += self._leave(zone, gone)
        return out

    def close(self) -> list[ZoneChange]:
        """End of stream: every track still inside leaves at its last sighting."""
        out = [c for zone, tracks in self._tracks.items() for c in self._leave(zone, list(tracks))]
        self._tick = 0
        return out

    def _leave(self, zone: str, track_ids: list[int]) -> list[ZoneChange]:
        out = []
        for tid in track_ids:
            st = self._tracks[zone].pop(tid)
            if st.side > 0:
                out.append(ZoneChange(zone, tid, "exit", st.label, st.last_pts, st.last_pts - st.since))
        return out
