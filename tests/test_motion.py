"""Motion detection, the detector gate and tracker prediction on hand-made arrays (no video, no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.frame import Detections, Frame
from pipeline.stage import StageContext, get_kind
from pipeline.wire import decode, encode
from stages.detect_gate import DetectGate, GateOptions, detect_gated, unexplained
from stages.motion import MotionDetector, MotionSettings, mask_boxes, polygon_mask
from stages.tracking import ByteTracker, IouTracker, SortTracker


def _scene(h: int = 240, w: int = 320, value: int = 80) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _with_square(x: int, y: int, side: int = 40, **kw) -> np.ndarray:
    img = _scene(**kw)
    img[y : y + side, x : x + side] = 230
    return img


# ------------------------------------------------------------------------------------------ motion
def test_mask_boxes_finds_blobs_largest_first_and_drops_small_ones():
    mask = np.zeros((50, 60), np.uint8)
    mask[5:10, 5:15] = 255  # 50 px
    mask[20:40, 30:50] = 255  # 400 px
    mask[45, 0] = 255  # 1 px: noise
    boxes = mask_boxes(mask, min_area=10)
    assert boxes.tolist() == [[30, 20, 50, 40], [5, 5, 15, 10]]
    assert mask_boxes(np.zeros((5, 5), np.uint8), 1).shape == (0, 4)


def test_polygon_mask_paints_ignored_regions_out_at_scale():
    mask = polygon_mask((10, 20), [[[0, 0], [20, 0], [20, 10], [0, 10]]], scale=0.5)
    assert mask[:5, :10].max() == 0 and mask[6:, 12:].min() == 255


@pytest.mark.parametrize("method", ["diff", "average", "mog2"])
def test_a_moving_square_is_motion_and_a_still_scene_is_not(method):
    md = MotionDetector(MotionSettings(width=160, method=method, min_area=10))
    assert len(md.detect(_scene())) == 0  # first frame: nothing to compare with
    for _ in range(5):
        assert len(md.detect(_scene())) == 0
    boxes = md.detect(_with_square(200, 100))
    assert len(boxes) >= 1
    x1, y1, x2, y2 = boxes[0]  # full-frame pixels, around the square (blur + dilation grow it a little)
    assert 180 <= x1 <= 200 and 80 <= y1 <= 100 and 240 <= x2 <= 262 and 140 <= y2 <= 162


def test_diff_forgets_an_object_that_stopped():
    md = MotionDetector(MotionSettings(width=160, min_area=10))
    md.detect(_scene())
    assert len(md.detect(_with_square(100, 100)))  # it arrives
    assert len(md.detect(_with_square(100, 100))) == 0  # it stands still: no motion, no ghost


def test_ignored_polygon_hides_motion_and_lighting_change_gives_one_full_frame_box():
    md = MotionDetector(
        MotionSettings(width=160, min_area=10), ignore=[[[180, 80], [320, 80], [320, 240], [180, 240]]]
    )
    md.detect(_scene())
    assert len(md.detect(_with_square(200, 100))) == 0  # inside the ignored region
    boxes = md.detect(_scene(value=200))  # the lights go on: most of the picture changes at once
    assert boxes.tolist() == [[0, 0, 320, 240]] and md.lighting_changes == 1
    assert len(md.detect(_scene(value=200))) == 0  # re-learned at once


# -------------------------------------------------------------------------------------------- gate
def _frame(seq: int, motion=None, source: str = "cam") -> Frame:
    m = None if motion is None else np.asarray(motion, np.float32).reshape(-1, 4)
    return Frame(source, seq, seq / 10, 0.0, np.zeros((4, 4, 3), np.uint8), motion=m)


def test_unexplained_motion_is_motion_outside_the_found_boxes():
    person = np.array([[100, 100, 200, 300]], np.float32)
    assert not unexplained(np.zeros((0, 4), np.float32), person, 0.8, 0.1)
    assert not unexplained(np.array([[120, 150, 190, 250]], np.float32), person, 0.8, 0.1)  # arms
    assert unexplained(np.array([[400, 100, 450, 300]], np.float32), person, 0.8, 0.1)  # someone new
    assert unexplained(np.array([[150, 100, 300, 300]], np.float32), person, 0.8, 0.1)  # walks away
    assert unexplained(np.array([[120, 150, 190, 250]], np.float32), np.zeros((0, 4)), 0.8, 0.1)


def test_gate_runs_on_motion_rechecks_found_objects_and_keeps_a_maximum_interval():
    gate = DetectGate(GateOptions(recheck_every=3, max_interval=10, confirm_gone=1, min_score=0.5))
    person = Detections.create([[10, 10, 50, 90]], [0.9])
    nothing = Detections.empty()
    still = np.zeros((0, 4))
    runs = []
    for seq in range(40):
        motion = [[100, 100, 120, 120]] if seq in (2, 3) else still  # away from the object
        f = _frame(seq, motion)
        if gate.should_run(f):
            runs.append(seq)
            # the object is there from frame 2 to frame 20
            gate.ran(f, person if 2 <= seq <= 20 else nothing)
    # 0: first frame; 2, 3: motion; re-checks every 3 while the person is seen; 21 and 22: the
    # re-check found nothing, confirmed once more; then only the maximum interval (10).
    assert runs == [0, 2, 3, 6, 9, 12, 15, 18, 21, 22, 32]
    assert gate.report() == {"inferred": len(runs), "skipped": 40 - len(runs)}


def _gate_runs(gate: DetectGate, sources: list[str], frames: int, motion_at) -> dict[str, list[int]]:
    """Feed every source frames 0..frames-1 (in lockstep, like copies of one video); motion away
    from the object on the seqs `motion_at(source, seq)` says, still otherwise; the detector
    always finds the person. The seqs each source ran on."""
    person = Detections.create([[10, 10, 50, 90]], [0.9])
    runs: dict[str, list[int]] = {s: [] for s in sources}
    for seq in range(frames):
        for source in sources:
            motion = [[100, 100, 120, 120]] if motion_at(source, seq) else np.zeros((0, 4))
            f = _frame(seq, motion, source)
            if gate.should_run(f):
                runs[source].append(seq)
                gate.ran(f, person)
    return runs


def test_gate_spreads_the_rechecks_of_sources_with_the_same_motion_over_different_frames():
    """Five copies of one video: motion on the same frames, so the same motion-triggered runs; their
    periodic re-checks must not all land on the same frame (a burst of inferences at once)."""
    gate = DetectGate(GateOptions(recheck_every=5, max_interval=1000))
    sources = [f"cam{i}" for i in range(5)]
    motion = {0, 1, 2, 17, 18, 41}
    runs = _gate_runs(gate, sources, 80, lambda source, seq: seq in motion)
    rechecks = {s: [q for q in runs[s] if q not in motion] for s in sources}
    for s in sources:  # motion-triggered runs are kept, the same for every source
        assert motion <= set(runs[s])
        assert rechecks[s]
    on_frame = [sum(seq in rechecks[s] for s in sources) for seq in range(80)]
    assert max(on_frame) == 1  # 5 sources, recheck_every 5: one re-check a frame
    assert len({q % 5 for s in sources for q in rechecks[s][:1]}) == 5  # each source on its own beat
    for s in sources:  # between motion, a followed source re-checks exactly every 5 frames
        steady = [q for q in rechecks[s] if 45 < q]
        assert np.diff(steady).tolist() == [5] * (len(steady) - 1)


def test_gate_rechecks_come_at_most_twice_the_interval_minus_one_after_any_run():
    gate = DetectGate(GateOptions(recheck_every=4, max_interval=1000))
    sources = [f"cam{i}" for i in range(6)]  # more sources than phases: round-robin
    rng = np.random.default_rng(3)
    moving = {(s, q) for s in sources for q in range(300) if rng.random() < 0.08}
    runs = _gate_runs(gate, sources, 300, lambda source, seq: (source, seq) in moving)
    for s in sources:
        gaps = np.diff(runs[s])
        assert gaps.max() <= 2 * 4 - 1, (s, runs[s])
        assert gaps.max() <= 4 + (4 - 1) // 2, (s, runs[s])  # the nearest beat: at most 5 for 4
    # no rule other than motion and the re-check ran: every run off motion is on the source's beat
    for i, s in enumerate(sources):
        assert all((q + i % 4) % 4 == 0 for q in runs[s] if q > 0 and (s, q) not in moving)


def test_gate_single_source_rechecks_regularly():
    gate = DetectGate(GateOptions(recheck_every=5, max_interval=1000))
    runs = _gate_runs(gate, ["cam"], 60, lambda source, seq: seq == 13)
    # after the motion at 13, the re-check due at 18 moves to the nearest beat frame, 20
    assert runs["cam"] == [0, 5, 10, 13, 20, 25, 30, 35, 40, 45, 50, 55]
    runs = _gate_runs(
        DetectGate(GateOptions(recheck_every=5, max_interval=1000)), ["cam"], 30, lambda s, q: q == 7
    )
    assert runs["cam"][:5] == [0, 5, 7, 10, 15]  # due at 12, nearest beat 10


def test_gate_phases_follow_the_order_sources_appear_and_a_returning_source_gets_a_new_one():
    gate = DetectGate(GateOptions(recheck_every=3, max_interval=1000))
    order = ["b", "a", "c", "d"]  # phases 0, 1, 2, 0: beats on seqs 0/3/6, 2/5, 1/4/7, 0/3/6
    runs = _gate_runs(gate, order, 9, lambda source, seq: False)
    assert [runs[s] for s in order] == [[0, 3, 6], [0, 2, 5, 8], [0, 4, 7], [0, 3, 6]]
    gate.end_stream("b")
    again = _gate_runs(gate, ["b"], 9, lambda source, seq: False)
    assert again["b"] == [0, 2, 5, 8]  # the fifth arrival: phase 1


def test_gate_without_motion_information_or_options_always_runs_and_sources_are_separate():
    gated = DetectGate(GateOptions())
    assert all(gated.should_run(_frame(s)) for s in range(5))  # no filter.motion before it
    ungated = DetectGate(None)
    assert all(ungated.should_run(_frame(s, np.zeros((0, 4)))) for s in range(5))
    gate = DetectGate(GateOptions(max_interval=100))
    assert gate.should_run(_frame(0, np.zeros((0, 4)), "a"))
    assert gate.should_run(_frame(0, np.zeros((0, 4)), "b"))  # b's first frame is its own
    assert not gate.should_run(_frame(1, np.zeros((0, 4)), "a"))


def test_detect_gated_appends_what_was_found_and_marks_skipped_frames_predicted():
    gate = DetectGate(GateOptions(max_interval=100))
    calls = []

    def find(frames):
        calls.append([f.seq for f in frames])
        return [Detections.create([[1, 2, 3, 4]], [0.2]) for _ in frames]

    out = detect_gated(
        gate, [_frame(0, np.zeros((0, 4))), _frame(1, np.zeros((0, 4))), _frame(2, [[0, 0, 5, 5]])], find
    )
    assert calls == [[0, 2]]  # one batch with the frames that run
    assert [f.predicted for f in out] == [False, True, False]
    assert [len(f.detections) for f in out] == [1, 0, 1]


# --------------------------------------------------------------------------------------- trackers
@pytest.mark.parametrize("make", [IouTracker, SortTracker, ByteTracker])
def test_predict_keeps_a_still_object_alive_without_counting_misses(make):
    tracker = make(max_age=2)
    box = np.array([[100, 100, 150, 200]], float)
    for _ in range(4):
        ids = tracker.update(box, [0.9], [0])
    assert ids[0] > 0
    for _ in range(20):  # far longer than max_age: predicted frames are not misses
        pids, pboxes, pcls = tracker.predict()
        assert pids.tolist() == ids.tolist() and pcls.tolist() == [0]
        assert np.abs(pboxes - box).max() < 2.0  # a still object stays where it is
    assert tracker.update(box, [0.9], [0]).tolist() == ids.tolist()  # the re-check continues the track


def test_track_stage_reports_predicted_boxes_with_the_last_label_and_score():
    cls = get_kind("track.bytetrack")
    stage = cls(cls.Options(), StageContext(stage_id="t"))
    det = Detections.create([[10, 10, 60, 120]], [0.8], [0], ["person"])
    img = np.zeros((200, 200, 3), np.uint8)
    for seq in range(3):
        out = stage.process(Frame("cam", seq, 0.0, 0.0, img, det))
    tid = int(out.detections.track_id[0])
    out = stage.process(Frame("cam", 3, 0.0, 0.0, img, predicted=True))
    rec = out.to_record()
    assert rec["predicted"] is True
    assert [(d["track_id"], d["label"], d["score"]) for d in rec["detections"]] == [(tid, "person", 0.8)]
    assert "predicted" not in Frame("cam", 4, 0.0, 0.0, img).to_record()  # only when set


def test_wire_carries_motion_boxes_and_the_predicted_mark():
    img = np.zeros((4, 4, 3), np.uint8)
    frame = Frame("cam", 1, 0.1, 0.0, img, motion=np.array([[1, 2, 3, 4]], np.float32), predicted=True)
    out = decode(encode(frame)).message
    assert out.predicted and out.motion.tolist() == [[1, 2, 3, 4]] and out.motion.dtype == np.float32
    plain = decode(encode(Frame("cam", 1, 0.1, 0.0, img))).message
    assert plain.motion is None and not plain.predicted
    still = decode(encode(Frame("cam", 1, 0.1, 0.0, img, motion=np.zeros((0, 4), np.float32)))).message
    assert still.motion.shape == (0, 4)
    header = json.loads(encode(frame)[0])
    old = {k: v for k, v in header.items() if k not in ("mo", "pr")}  # a sender without these fields
    assert decode([json.dumps(old).encode(), *encode(frame)[1:]]).message.motion is None


# -------------------------------------------------------------------------------------- benchmark
def test_capacity_benchmark_turns_gating_off_for_its_baseline():
    from benchmarks.capacity import ungated
    from pipeline.config import load_config

    config = load_config("configs/people_counting_gated.yaml")
    plain = ungated(config)
    assert [s.kind for s in plain.stages] == [s.kind for s in config.stages if s.kind != "filter.motion"]
    people = next(s for s in plain.stages if s.id == "people")
    assert people.options.gate is None and "gate" not in people.with_
    assert next(s for s in config.stages if s.id == "people").options.gate is not None  # not changed


@pytest.mark.slow
def test_capacity_benchmark_runs_real_time_cameras_and_reports_both_configs(tmp_path):
    from benchmarks import capacity
    from pipeline.config import load_config

    config = load_config("configs/faces_haar.yaml")  # a short real-time trial of a model-free pipeline
    rows = capacity.run(config, fps=10, seconds=1.0, limit=2)
    assert [r["config"] for r in rows] == ["gated", "not gated"]
    assert rows[1]["x_not_gated"] == 1.0
    for row in rows:
        assert 0 <= row["cameras"] <= 2 and row["trials"][0]["cameras"] == 1
        assert row["cpu_ms_per_frame"] > 0
    assert "p99 < 100 ms" in capacity.format_rows(rows, 10, "1 s a trial")


@pytest.mark.parametrize(
    ("kind", "option", "value"),
    [("detect.yolo", "gate", {"max_interval": 10**9}), ("detect.hog", "gate", {"recheck_every": 10**9})],
)
def test_gate_waits_are_bounded(kind, option, value):
    from pipeline.config import config_from_dict
    from pipeline.errors import ConfigError

    stage = {"id": "s", "kind": kind, "with": {option: value}}
    with pytest.raises(ConfigError, match=r"must be <="):
        config_from_dict({"version": 1, "stages": [stage]})
