"""The event model, object lifecycle, the `events` stage, outbox, backoff and snapshots, on hand-made data."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from event_frames import event, frame

from pipeline.frame import Detections, Event, Frame
from pipeline.stage import StageContext
from stages.event_model import EVENT_SCHEMA, OutEvent, is_out_event, out_events
from stages.event_outbox import Outbox, backoff_delay
from stages.events import EventsOptions, EventsStage
from stages.object_lifecycle import ObjectLifecycle
from stages.sink_snapshots import SnapshotsSink, SnapshotsSinkOptions, crop_box


def test_event_json_round_trips_through_the_frame_event_and_matches_the_schema():
    e = event("e1", 1.5).with_files(snapshot="snapshots/e1.jpg")
    record = e.to_frame_event().to_record()
    assert record == e.to_json()
    assert OutEvent.from_json(record) == e
    assert set(EVENT_SCHEMA["required"]) <= set(record)
    assert set(record) <= set(EVENT_SCHEMA["properties"])
    assert is_out_event(Event.from_record(record))
    assert not is_out_event(Event("line_cross", "line", 1, {"direction": "in"}))  # raw analytics


def test_lifecycle_new_update_end_and_dwell():
    life = ObjectLifecycle(max_age=2, dwell_s=1.0)
    kinds = lambda changes: [(c.kind, c.track_id, c.changed, c.zone) for c in changes]  # noqa: E731
    assert kinds(life.update(0.0, [1], ["person"], [{"emotion": "neutral"}])) == [("new", 1, (), None)]
    assert life.update(0.1, [1], ["person"], [{"emotion": "neutral"}]) == []  # nothing changed
    assert kinds(life.update(0.2, [1], ["person"], [{"emotion": "happy"}])) == [
        ("update", 1, ("emotion",), None)
    ]
    changes = life.update(0.3, [1], ["person"], [{"emotion": "happy"}], [(1, "door", True)])
    assert kinds(changes) == [("update", 1, ("zones",), None)]
    assert life.objects[1].zones == {"door": 0.3}
    assert kinds(life.update(1.3, [1], ["person"], [{}])) == [("dwell", 1, (), "door")]
    assert life.update(1.4, [1], ["person"], [{}]) == []  # one dwell per visit
    assert life.update(1.5, [], [], []) == []
    assert life.update(1.6, [], [], []) == []
    assert kinds(life.update(1.7, [], [], [])) == [("end", 1, (), None)]  # unseen for more than 2 frames


def _tracked(seq: int, events: tuple[Event, ...] = (), label: str = "person") -> Frame:
    dets = Detections.create([[10, 10, 50, 90]], score=[0.8], label=[label], track_id=[7])
    dets = dets.with_attributes(emotion=np.array(["happy"], dtype=object), age=[31.5])
    return Frame("cam0", seq, seq * 0.1, 1000.0 + seq * 0.1, np.zeros((100, 100, 3), np.uint8), dets, events)


def test_events_stage_makes_object_and_analytics_events():
    stage = EventsStage(EventsOptions(max_age=1, end_events=False), StageContext("events"))
    first = out_events(stage.process(_tracked(0)))
    assert [e.type for e in first] == ["object_new"]
    new = first[0]
    assert (new.source, new.track_id, new.label, new.box, new.pts) == (
        "cam0",
        7,
        "person",
        (10, 10, 50, 90),
        0.0,
    )
    assert new.attributes == {"emotion": "happy", "age": 31.5}
    cross = Event("line_cross", "line", 7, {"direction": "in", "label": "person", "name": "aisle"})
    enter = Event("zone_enter", "zones", 7, {"name": "shelf", "label": "person", "pts": 0.1})
    out = stage.process(_tracked(1, (cross, enter)))
    made = out_events(out)
    assert [e.type for e in made] == ["object_update", "line_cross", "zone_enter"]
    assert made[0].data == {"changed": ["zones"]} and made[0].zones == ("shelf",)
    assert made[1].data["direction"] == "in" and made[1].data["line"] == "aisle"
    assert len({e.id for e in made} | {new.id}) == 4  # every event its own id
    assert out.events[:2] == (cross, enter)  # the analytics' own events stay
    leave = Event("zone_exit", "zones", 7, {"name": "shelf", "label": "person", "pts": 0.2, "dwell": 0.1})
    assert [e.type for e in out_events(stage.process(_tracked(2, (leave,))))] == [
        "object_update",
        "zone_leave",
    ]
    stage.process(_tracked(3).with_detections(Detections.empty()))
    ended = out_events(stage.process(_tracked(4).with_detections(Detections.empty())))
    assert [(e.type, e.track_id, e.box) for e in ended] == [("object_end", 7, (10, 10, 50, 90))]
    assert stage.context.report["events"] == {
        "object_new": 1,
        "object_update": 2,
        "line_cross": 1,
        "zone_enter": 1,
        "zone_leave": 1,
        "object_end": 1,
    }


def test_objects_still_tracked_at_the_end_of_a_stream_get_their_object_end():
    stage = EventsStage(EventsOptions(max_age=30), StageContext("events"))
    assert stage.process(_tracked(0)) is None  # held back by one frame
    first = stage.process(_tracked(1))
    assert first is not None and first.seq == 0 and [e.type for e in out_events(first)] == ["object_new"]
    (last,) = stage.end_stream("cam0")
    assert last.seq == 1
    ended = out_events(last)
    assert [(e.type, e.track_id, e.pts) for e in ended] == [("object_end", 7, 0.1)]
    assert ended[0].data["first_pts"] == 0.0 and ended[0].data["last_pts"] == 0.1
    assert stage.end_stream("cam0") == []  # nothing held any more


def test_backoff_doubles_up_to_the_cap():
    assert [backoff_delay(a, 0.5, 3.0) for a in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert all(0.45 <= backoff_delay(0, 0.5, 3.0, jitter=0.1) <= 0.55 for _ in range(50))


def test_outbox_never_blocks_and_counts_drops():
    release = threading.Event()
    delivered: list[int] = []

    def deliver(item: int, stopping: threading.Event) -> bool:
        release.wait(5)
        delivered.append(item)
        return True

    box: Outbox[int] = Outbox("test", deliver, maxsize=3)
    accepted = [box.put(i) for i in range(10)]  # the consumer is stuck: 1 in hand + 3 queued
    assert accepted.count(True) in (3, 4) and box.stats.dropped == 10 - accepted.count(True)
    release.set()
    stats = box.close(5.0)
    assert delivered == [i for i, ok in zip(range(10), accepted, strict=True) if ok]
    assert stats.sent == len(delivered) and stats.sent + stats.dropped == 10


def test_outbox_close_gives_up_on_a_dead_consumer():
    def deliver(item: int, stopping: threading.Event) -> bool:
        return not stopping.wait(60)  # a broker that never comes back

    box: Outbox[int] = Outbox("dead", deliver, maxsize=5)
    for i in range(5):
        box.put(i)
    t = time.monotonic()
    stats = box.close(0.2)
    assert time.monotonic() - t < 10  # bounded, not 60 s
    assert stats.sent == 0 and stats.failed + stats.dropped == 5


def test_snapshots_write_a_jpeg_per_event_and_set_its_path(tmp_path):
    sink = SnapshotsSink(SnapshotsSinkOptions(crop=True), StageContext("snap", output_dir=tmp_path))
    sink.setup()
    out = sink.process(frame(3, events=(event("a1", 0.3), event("a2", 0.3, "object_new"))))
    events = out_events(out)
    assert [e.snapshot for e in events] == ["snapshots/a1.jpg", "snapshots/a2.jpg"]
    image = cv2.imread(str(tmp_path / "snapshots/a1.jpg"))
    assert image.shape == (120, 160, 3)
    assert image[20, 35].tolist() != image[5, 5].tolist()  # the box edge is drawn
    assert cv2.imread(str(tmp_path / "snapshots/a1-crop.jpg")).shape[:2] == (110, 60)
    assert sink.context.report["snapshots"]["count"] == 2


@pytest.mark.parametrize(
    ("box", "shape"), [((10, 20, 60, 120), (110, 60)), ((-5, -5, 4, 4), (5, 5)), ((200, 0, 300, 10), None)]
)
def test_crop_box_grows_and_clips(box, shape):
    image = np.zeros((120, 160, 3), np.uint8)
    crop = crop_box(image, box, 0.1)
    assert (None if crop is None else crop.shape[:2]) == shape
