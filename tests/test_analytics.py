"""Line and zone analytics on synthetic paths with exact answers."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.frame import Detections, Frame
from pipeline.stage import StageContext, get_kind
from stages.analytics import LineOptions, LineStage, ZoneOptions, ZoneStage
from stages.zones import (
    LineCounter,
    ZoneMonitor,
    anchor_points,
    crosses_polyline,
    point_in_polygon,
    signed_distance_to_polygon,
    signed_distance_to_polyline,
    to_pixels,
)

LINE = np.array([[0, 100], [200, 100]], float)  # drawn left to right: going down is "in"
SQUARE = np.array([[100, 100], [300, 100], [300, 300], [100, 300]], float)


# --- geometry -------------------------------------------------------------------------------


def test_signed_distance_and_sides():
    d = signed_distance_to_polyline(np.array([[50, 110], [50, 90], [100, 100], [250, 100]]), LINE)
    np.testing.assert_allclose(d, [10, -10, 0, 50])  # beyond the end: distance to the end point
    bent = np.array([[0, 100], [100, 100], [100, 200]])  # right, then down: "in" is the inner corner
    np.testing.assert_allclose(
        signed_distance_to_polyline(np.array([[50, 150], [150, 50]]), bent), [50, -50 * 2**0.5]
    )


def test_crosses_polyline():
    start = np.array([[50, 90], [50, 90], [250, 90], [-50, 100], [50, 100]], float)
    end = np.array([[50, 110], [60, 95], [250, 110], [-10, 100], [50, 100]], float)
    # across; stays above; beside the end; collinear but disjoint; standing on the line
    assert list(crosses_polyline(start, end, LINE)) == [True, False, False, False, True]


def test_polygon_tests():
    pts = np.array([[200, 200], [50, 200], [110, 200], [200, 330]])
    assert list(point_in_polygon(pts, SQUARE)) == [True, False, True, False]
    np.testing.assert_allclose(signed_distance_to_polygon(pts, SQUARE), [100, -50, 10, -30])
    concave = np.array([[0, 0], [100, 0], [100, 100], [50, 50], [0, 100]], float)
    assert list(point_in_polygon(np.array([[50, 80], [50, 20], [90, 80]]), concave)) == [False, True, True]


def test_anchors_and_normalized_points():
    xyxy = np.array([[10, 20, 30, 60]])
    np.testing.assert_allclose(anchor_points(xyxy), [[20, 60]])
    np.testing.assert_allclose(anchor_points(xyxy, "center"), [[20, 40]])
    np.testing.assert_allclose(anchor_points(xyxy, "top_center"), [[20, 20]])
    np.testing.assert_allclose(to_pixels([[0.5, 0.25]], 640, 480, True), [[320, 120]])
    np.testing.assert_allclose(to_pixels([[5, 6]], 640, 480, False), [[5, 6]])


# --- line counting --------------------------------------------------------------------------


def feed(counter: LineCounter, paths: dict[int, list[tuple[float, float]]], label: str = "person") -> list:
    """Tracks {id: [(x, y) per frame]}; a None position means not seen on that frame."""
    events = []
    for t in range(max(len(p) for p in paths.values())):
        seen = [(tid, p[t]) for tid, p in paths.items() if t < len(p) and p[t] is not None]
        ids = [tid for tid, _ in seen]
        events += counter.update(
            ids, np.array([xy for _, xy in seen], float).reshape(-1, 2), [label] * len(ids)
        )
    return events


def walk(y0: float, y1: float, step: float = 5.0, x: float = 100.0) -> list[tuple[float, float]]:
    n = int(abs(y1 - y0) / step)
    return [(x, y0 + (y1 - y0) * i / n) for i in range(n + 1)]


def test_crossings_both_ways_exact_counts():
    counter = LineCounter(LINE, min_distance=10, min_frames=2)
    paths = {
        1: walk(40, 160) + walk(160, 40),  # down (in), later back up (out)
        2: walk(170, 30),  # up (out)
        3: walk(150, 190),  # never crosses
    }
    events = feed(counter, paths)
    assert sorted((e.track_id, e.direction) for e in events) == [(1, "in"), (1, "out"), (2, "out")]
    assert counter.counts == {"in": {"person": 1}, "out": {"person": 2}}
    assert counter.totals == {"in": 1, "out": 2}


def test_jitter_on_the_line_does_not_double_count():
    rng = np.random.default_rng(0)
    jitter = [(100 + rng.uniform(-3, 3), 100 + rng.uniform(-8, 8)) for _ in range(60)]
    # Lingers on the line, then goes back where it came from: no crossing at all.
    counter = LineCounter(LINE, min_distance=10, min_frames=2)
    assert feed(counter, {1: walk(40, 95) + jitter + walk(95, 40)}) == []
    # Lingers, then carries on: exactly one crossing.
    counter = LineCounter(LINE, min_distance=10, min_frames=2)
    assert [(e.track_id, e.direction) for e in feed(counter, {1: walk(40, 95) + jitter + walk(95, 160)})] == [
        (1, "in")
    ]
    # Large one-frame spikes across the line are not a crossing either (min_frames).
    spikes = [(100, 85), (100, 115)] * 20
    counter = LineCounter(LINE, min_distance=10, min_frames=2)
    assert feed(counter, {1: walk(40, 85) + spikes + [(100, 85)] * 3}) == []


def test_walking_around_the_end_is_not_a_crossing():
    around = [(220 + 0 * i, 40 + 5 * i) for i in range(25)]  # x = 220: beyond the end at x = 200
    counter = LineCounter(LINE, min_distance=10, min_frames=2)
    assert feed(counter, {1: walk(40, 60, x=150) + around + walk(160, 180, x=150)}) == []


def test_counts_per_label_and_forgetting():
    counter = LineCounter(LINE, min_distance=10, min_frames=1, max_age=2)
    counter.update([1, 2], np.array([[50, 50], [150, 150]]), ["car", "person"])
    counter.update([1, 2], np.array([[50, 150], [150, 50]]), ["car", "person"])
    assert counter.counts == {"in": {"car": 1}, "out": {"person": 1}}
    for _ in range(3):
        counter.update([], np.zeros((0, 2)), [])
    assert counter._tracks == {}


# --- zones ----------------------------------------------------------------------------------


def test_zone_enter_exit_dwell_exact():
    # 10 fps, x = 5 + 10 t: inside the square for frames 10..29 (x = 105..295).
    zm = ZoneMonitor({"shop": SQUARE}, min_distance=5, min_frames=2)
    changes = []
    for t in range(40):
        changes += zm.update([7], np.array([[5 + 10 * t, 200]]), ["person"], pts=t / 10)
        if t == 15:
            assert zm.occupancy() == {"shop": [7]} and zm.occupancy_by_label() == {"shop": {"person": 1}}
    assert [(c.kind, c.track_id, round(c.pts, 6), c.dwell) for c in changes] == [
        ("enter", 7, 1.0, None),
        ("exit", 7, 3.0, pytest.approx(2.0)),
    ]
    assert zm.occupancy() == {"shop": []}


def test_zone_flicker_at_the_border_and_lost_tracks():
    zm = ZoneMonitor({"a": SQUARE, "b": SQUARE + 1000}, min_distance=5, min_frames=2, max_age=3)
    rng = np.random.default_rng(1)
    for t in range(50):  # standing on the left border, jittering by up to 4 px
        assert zm.update([1], np.array([[100 + rng.uniform(-4, 4), 200]]), ["p"], pts=t / 10) == []
    # A track enters, then vanishes inside: it exits after max_age frames, dated at its last sighting.
    changes = []
    for t in range(50, 60):
        seen = t < 54
        changes += zm.update(
            [2] if seen else [], np.array([[200, 200]] if seen else []), ["p"] if seen else [], t / 10
        )
    assert [(c.kind, c.zone, round(c.pts, 6)) for c in changes] == [("enter", "a", 5.0), ("exit", "a", 5.3)]
    assert changes[1].dwell == pytest.approx(0.3)
    zm.update([3], np.array([[200, 200]]), ["p"], 6.0)
    zm.update([3], np.array([[200, 200]]), ["p"], 6.1)
    assert [(c.kind, c.track_id, c.dwell) for c in zm.close()] == [("exit", 3, pytest.approx(0.1))]


# --- stages ---------------------------------------------------------------------------------


def tracked_frame(
    source: str, seq: int, objects: list[tuple[int, float, float, str]], fps: float = 10
) -> Frame:
    """objects: (track_id, anchor x, anchor y, label); the box's bottom centre is the anchor."""
    boxes = [[x - 10, y - 40, x + 10, y] for _, x, y, _ in objects]
    dets = Detections.create(
        np.array(boxes, float).reshape(-1, 4),
        label=[o[3] for o in objects],
        track_id=[o[0] for o in objects],
    )
    return Frame(source, seq, seq / fps, 0.0, np.zeros((400, 400, 3), np.uint8), dets)


def test_line_stage_events_and_report():
    stage = LineStage(
        LineOptions(points=[[0, 100], [200, 100]], classes=["person"]), StageContext(stage_id="door")
    )
    events = []
    for t, y in enumerate(range(40, 170, 10)):
        # track 1 walks down; a car (track 2) does the same but is filtered; track -1 is ignored
        objs = [(1, 100, y, "person"), (2, 150, y, "car"), (-1, 50, y, "person")]
        for src in ("a", "b") if t < 8 else ("a",):  # source b stops before crossing
            out = stage.process(tracked_frame(src, t, objs))
            assert len(out.detections) == 3
            events += [(src, e) for e in out.events]
    kinds = [(src, e.type, e.track_id) for src, e in events]
    assert kinds == [("a", "line_counts", None), ("b", "line_counts", None), ("a", "line_cross", 1)]
    cross = events[-1][1]
    assert cross.stage == "door" and cross.data["direction"] == "in" and cross.data["label"] == "person"
    assert cross.data["counts"] == {"in": 1, "out": 0} and cross.data["name"] == "door"
    assert cross.data["by_label"] == {"in": {"person": 1}, "out": {}}
    assert cross.data["line"] == [[0.0, 100.0], [200.0, 100.0]]
    assert stage.context.report["counts"] == {
        "a": {"in": {"person": 1}, "out": {}},
        "b": {"in": {}, "out": {}},
    }
    assert stage.end_stream("a") == []


def test_line_stage_normalized_points_and_untracked_warning(caplog):
    stage = LineStage(
        LineOptions(points=[[0, 0.25], [0.5, 0.25]], normalized=True), StageContext(stage_id="l")
    )
    with caplog.at_level(logging.WARNING):
        for t in range(30):
            out = stage.process(tracked_frame("a", t, [(-1, 100, 50 + 5 * t, "person")]))
    assert out.events == () or all(e.type == "line_counts" for e in out.events)
    assert sum("no track_id" in r.message for r in caplog.records) == 1
    first = stage.process(tracked_frame("c", 0, []))
    assert first.events[0].data["line"] == [[0.0, 100.0], [200.0, 100.0]]  # 400 x 400 frame


def test_zone_stage_events_dwell_and_occupancy_changes():
    stage = ZoneStage(ZoneOptions(zones={"shop": SQUARE.tolist()}, max_age=3), StageContext(stage_id="z"))
    seen = []
    for t in range(40):
        objs = [(7, 5 + 10 * t, 200, "person")]
        if 12 <= t < 20:
            objs.append((8, 200, 250, "person"))  # inside for 8 frames, then vanishes
        out = stage.process(tracked_frame("a", t, objs))
        seen += [(t, e.type, e.track_id, e.data) for e in out.events]
    kinds = [(t, typ, tid) for t, typ, tid, _ in seen]
    assert kinds == [
        (0, "zone_occupancy", None),
        (11, "zone_enter", 7),
        (11, "zone_occupancy", None),
        (13, "zone_enter", 8),
        (13, "zone_occupancy", None),
        (23, "zone_exit", 8),  # max_age frames after its last sighting
        (23, "zone_occupancy", None),
        (31, "zone_exit", 7),
        (31, "zone_occupancy", None),
    ]
    data = {(t, typ): d for t, typ, _, d in seen}
    first = data[0, "zone_occupancy"]
    assert first["count"] == 0 and first["zone"][0] == [100.0, 100.0]
    assert data[13, "zone_occupancy"] | {"zone": None} == {
        "name": "shop",
        "count": 2,
        "by_label": {"person": 2},
        "track_ids": [7, 8],
        "zone": None,
        "counts": {"shop": 2},
    }
    assert data[13, "zone_enter"]["counts"] == {"shop": 2} and data[13, "zone_enter"]["name"] == "shop"
    assert data[11, "zone_enter"]["pts"] == 1.0
    assert data[31, "zone_exit"]["dwell"] == pytest.approx(2.0)
    assert data[23, "zone_exit"]["pts"] == 1.9 and data[23, "zone_exit"]["dwell"] == pytest.approx(0.7)
    assert stage.end_stream("a") == []
    assert stage.context.report["zones"]["a"]["shop"] == {
        "visits": 2,
        "dwell_total_s": 2.7,
        "dwell_max_s": 2.0,
        "max_occupancy": 2,
    }


def test_analytics_options_validated_and_registered():
    with pytest.raises(ValidationError):
        LineOptions(points=[[0, 0]])
    with pytest.raises(ValidationError):
        ZoneOptions(zones={"a": [[0, 0], [1, 1]]})
    with pytest.raises(ValidationError):
        LineOptions(points=[[0, 0], [1, 1]], anchor="left")
    assert get_kind("analytics.line") is LineStage and get_kind("analytics.zone") is ZoneStage
    assert LineStage.stateful and ZoneStage.stateful


def test_render_draws_the_line_from_the_events_alone():
    render_kind = get_kind("render")
    render = render_kind(render_kind.Options(), StageContext(stage_id="draw"))
    render.setup()
    line = LineStage(LineOptions(points=[[0, 100], [200, 100]]), StageContext(stage_id="door"))
    out = render.process(line.process(tracked_frame("a", 0, [])))
    assert out.annotated is not None and out.annotated[99:102, 10:190].any(axis=(0, 2)).all()
