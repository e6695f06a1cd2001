"""Trackers on synthetic trajectories with known answers (no video)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.optimize import linear_sum_assignment

from benchmarks.trackers import TRACKERS as TRACKERS_BY_KIND
from benchmarks.trackers import format_rows as format_tracker_bench
from benchmarks.trackers import run as run_tracker_bench
from benchmarks.trackers import synthetic_frames
from pipeline.evaluation.mot import MotSequence, evaluate_mot
from pipeline.frame import Detections, Frame
from pipeline.stage import StageContext, get_kind
from stages.track import (
    ByteTrackOptions,
    ByteTrackStage,
    IouTrackOptions,
    IouTrackStage,
    SortOptions,
    SortStage,
)
from stages.tracking import (
    BoxKalman,
    ByteTracker,
    IouTracker,
    SortTracker,
    TrackState,
    assignment,
    greedy_pairs,
    hungarian_pairs,
    iou_matrix,
    iou_pairs,
    match_greedy,
    match_hungarian,
)

TRACKERS = {"iou": IouTracker, "sort": SortTracker, "bytetrack": ByteTracker}
MOTION_TRACKERS = {"sort": SortTracker, "bytetrack": ByteTracker}


def box(cx: float, cy: float, w: float = 40, h: float = 100) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def run(tracker, frames: list[list[list[float]]], scores=None, classes=None) -> list[np.ndarray]:
    out = []
    for i, boxes in enumerate(frames):
        s = None if scores is None else scores[i]
        c = None if classes is None else classes[i]
        out.append(tracker.update(np.array(boxes, float).reshape(-1, 4), s, c))
    return out


# --- pure math --------------------------------------------------------------------------------


def test_iou_matrix_known_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], float)
    got = iou_matrix(a, b)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got[0], [50 / 150, 1.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(got[1], [0, 0, 0])  # a degenerate box overlaps nothing
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_hungarian_beats_greedy_on_total_and_respects_threshold():
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    r, c = match_greedy(sim, 0.05)
    assert list(zip(r, c, strict=True)) == [(0, 0), (1, 1)]
    r, c = match_hungarian(sim, 0.05)
    assert list(zip(r, c, strict=True)) == [(0, 1), (1, 0)]
    r, c = match_hungarian(sim, 0.5)  # (1, 1) = 0.1 is not admissible
    assert list(zip(r, c, strict=True)) == [(0, 1), (1, 0)]
    r, c = match_greedy(sim, 0.86)
    assert list(zip(r, c, strict=True)) == [(0, 0)]
    assert len(match_hungarian(np.zeros((0, 3)), 0.3)[0]) == 0
    assert len(match_greedy(np.zeros((2, 0)), 0.3)[0]) == 0


@pytest.mark.parametrize("seed", range(3))
def test_sparse_pairs_and_matchers_agree_with_dense_references(seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 300, (60, 2))
    a = np.c_[xy, xy + rng.uniform(5, 60, (60, 2))]
    b = np.r_[a[:50] + rng.normal(0, 8, (50, 4)), np.c_[xy[:10], xy[:10] + 30]]
    dense = iou_matrix(a, b)
    rows, cols, sim = iou_pairs(a, b, 0.1)
    want = np.argwhere((dense > 0) & (dense >= 0.1))
    assert sorted(zip(rows, cols, strict=True)) == sorted(map(tuple, want))
    np.testing.assert_allclose(sim, dense[rows, cols], rtol=1e-6)
    # Greedy: the same as taking the best remaining pair one at a time.
    taken_r, taken_c, expect = set(), set(), []
    for k in np.argsort(-sim, kind="stable"):
        if rows[k] not in taken_r and cols[k] not in taken_c:
            taken_r.add(rows[k])
            taken_c.add(cols[k])
            expect.append((rows[k], cols[k]))
    assert sorted(zip(*greedy_pairs(rows, cols, sim), strict=True)) == sorted(expect)
    # Hungarian: as many matches as scipy on the dense problem, and the same total IoU.
    cost = np.where(dense >= 0.1, -dense, 1e6)
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < 1e6
    got_r, got_c = hungarian_pairs(rows, cols, sim)
    assert len(got_r) == ok.sum() and len(set(got_r)) == len(got_r) and len(set(got_c)) == len(got_c)
    assert dense[got_r, got_c].sum() == pytest.approx(dense[r[ok], c[ok]].sum(), rel=1e-6)


def test_kalman_learns_constant_velocity():
    kf = BoxKalman()
    mean, cov = kf.initiate(np.array([box(100, 200)]))
    for t in range(1, 20):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, np.array([box(100 + 5 * t, 200 - 2 * t)]))
    mean, _ = kf.predict(mean, cov)
    np.testing.assert_allclose(mean[0, :2], [100 + 5 * 20, 200 - 2 * 20], atol=0.5)
    np.testing.assert_allclose(mean[0, 4:6], [5, -2], atol=0.2)
    np.testing.assert_allclose(kf.boxes(mean)[0], box(200, 160), atol=0.5)


def _textbook_kalman(kf, mean, cov, xyxy):
    """One predict + update with the full 8x8 matrices (F, Q, H, R), as the filter is usually written."""
    f = np.eye(8)
    f[:4, 4:] = np.eye(4)
    h = np.eye(4, 8)
    s = np.maximum(mean[:, 2:4], 1.0)[:, [0, 1, 0, 1]]
    q = np.concatenate([kf.std_position * s, kf.std_velocity * s], axis=1) ** 2
    mean, cov = mean @ f.T, f @ cov @ f.T + np.stack([np.diag(x) for x in q])
    r = np.stack(
        [np.diag(x) for x in (kf.std_position * np.maximum(mean[:, 2:4], 1.0)[:, [0, 1, 0, 1]]) ** 2]
    )
    s_mat = h @ cov @ h.T + r
    gain = cov @ h.T @ np.linalg.inv(s_mat)
    z = np.c_[(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]]
    mean = mean + np.einsum("nij,nj->ni", gain, z - mean @ h.T)
    return mean, cov - gain @ s_mat @ gain.transpose(0, 2, 1)


def test_kalman_blocks_match_the_full_matrix_filter():
    # The filter keeps the covariance as per-coordinate 2x2 blocks: the same numbers as the 8x8 form.
    kf = BoxKalman()
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 500, (5, 2))
    boxes = np.c_[xy, xy + rng.uniform(0.5, 200, (5, 2))]
    mean, cov = kf.initiate(boxes)
    full_mean, full_cov = mean.copy(), np.zeros((5, 8, 8))
    for a in range(2):
        for b in range(2):
            full_cov[:, 4 * a + np.arange(4), 4 * b + np.arange(4)] = cov[:, a, b]
    for _ in range(30):
        boxes = boxes + rng.normal(0, 4, boxes.shape)
        mean, cov = kf.update(*kf.predict(mean, cov), boxes)
        full_mean, full_cov = _textbook_kalman(kf, full_mean, full_cov, boxes)
    np.testing.assert_allclose(mean, full_mean, rtol=1e-9, atol=1e-9)
    for a in range(2):
        for b in range(2):
            block = full_cov[:, 4 * a + np.arange(4), 4 * b + np.arange(4)]
            np.testing.assert_allclose(cov[:, a, b], block, rtol=1e-9, atol=1e-9)
    outside = np.ones((8, 8), bool)
    outside[np.arange(8), np.arange(8)] = outside[np.arange(4), np.arange(4, 8)] = False
    outside[np.arange(4, 8), np.arange(4)] = False
    assert np.all(np.abs(full_cov[:, outside]) < 1e-9)  # nothing outside the blocks


def test_iou_pairs_of_few_boxes_are_the_sweeps_pairs(monkeypatch):
    # Few boxes take every pair at once; the result, order included, is the sweep's.
    rng = np.random.default_rng(1)
    cases = []
    for t, n in [(1, 1), (1, 3), (3, 1), (2, 2), (4, 5), (8, 8)]:
        xy = rng.uniform(0, 100, (t + n, 2))
        boxes = np.c_[xy, xy + rng.uniform(5, 60, (t + n, 2))]
        if n > 1:
            boxes[-1] = boxes[t]  # two equal boxes of b: a tie that greedy matching breaks by pair order
        cases.append((boxes[:t], boxes[t:]))
    few = [iou_pairs(a, b, 0.05) for a, b in cases]
    monkeypatch.setattr(assignment, "_DENSE_PAIRS", 0)
    for (a, b), got in zip(cases, few, strict=True):
        for x, y in zip(got, iou_pairs(a, b, 0.05), strict=True):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype


# --- lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRACKERS)
def test_two_objects_get_stable_ids_after_min_hits(name):
    tracker = TRACKERS[name](min_hits=3)
    frames = [[box(100 + 4 * t, 100), box(400 - 4 * t, 300)] for t in range(10)]
    out = run(tracker, frames)
    assert [list(x) for x in out[:2]] == [[-1, -1], [-1, -1]]
    assert all(list(x) == [1, 2] for x in out[2:])
    assert all(x.dtype == np.int64 for x in out)
    assert list(tracker.table.state) == [TrackState.CONFIRMED] * 2


@pytest.mark.parametrize("name", TRACKERS)
def test_emit_tentative_gives_ids_at_once(name):
    out = run(TRACKERS[name](emit_tentative=True), [[box(100, 100)], [box(102, 100)]])
    assert [list(x) for x in out] == [[1], [1]]


@pytest.mark.parametrize("name", TRACKERS)
def test_rows_keep_their_order(name):
    tracker = TRACKERS[name](min_hits=1)
    a, b = box(100, 100), box(300, 100)
    out = run(tracker, [[a, b], [b, a], [a, b]])
    assert [list(x) for x in out] == [[1, 2], [2, 1], [1, 2]]


@pytest.mark.parametrize("name", TRACKERS)
def test_empty_frames_and_tentative_flicker_use_no_ids(name):
    tracker = TRACKERS[name](min_hits=2, max_age=0)
    # A one-frame blip is tentative and dies on its first miss: it must not consume an ID.
    out = run(tracker, [[], [box(100, 100)], [], [box(500, 100)], [box(502, 100)], []])
    assert [list(x) for x in out] == [[], [-1], [], [-1], [1], []]
    assert len(tracker.table) == 0


@pytest.mark.parametrize("name", TRACKERS)
def test_ids_never_reused_after_a_track_dies_or_reset(name):
    tracker = TRACKERS[name](min_hits=1, max_age=2)
    out = run(tracker, [[box(100, 100)]] * 3 + [[]] * 4 + [[box(100, 100)]] * 2)
    assert list(out[0]) == [1] and list(out[-1]) == [2]  # same place, but the old track died
    tracker.reset()
    assert list(tracker.update(np.array([box(100, 100)]))) == [3]


@pytest.mark.parametrize("name", TRACKERS)
def test_class_aware_track_never_switches_class(name):
    frames = [[box(100, 100)]] * 3
    classes = [[0], [0], [1]]
    out = run(TRACKERS[name](min_hits=1), frames, classes=classes)
    assert [list(x) for x in out] == [[1], [1], [2]]
    out = run(TRACKERS[name](min_hits=1, class_aware=False), frames, classes=classes)
    assert [list(x) for x in out] == [[1], [1], [1]]


def crossing(t: int) -> list[list[float]]:
    """Two people walk towards each other on nearly the same row and swap places at t = 15;
    the one behind (B) is hidden while they overlap (t = 14..16)."""
    a, b = box(50 + 10 * t, 100), box(350 - 10 * t, 104)
    return [a] if 14 <= t <= 16 else [a, b]


@pytest.mark.parametrize("name", MOTION_TRACKERS)
def test_crossing_paths_keep_ids(name):
    out = run(MOTION_TRACKERS[name](min_hits=1), [crossing(t) for t in range(31)])
    assert all(list(x) == [1, 2][: len(x)] for x in out)


def test_iou_tracker_swaps_ids_when_paths_cross_under_occlusion():
    # Without motion the hidden person's last box sits where the other one arrives.
    out = run(IouTracker(min_hits=1, max_age=5), [crossing(t) for t in range(31)])
    assert list(out[13]) == [1, 2] and list(out[17]) != [1, 2]


@pytest.mark.parametrize("name", MOTION_TRACKERS)
def test_short_occlusion_keeps_the_id(name):
    tracker = MOTION_TRACKERS[name](min_hits=2, max_age=5)
    # Moving at 20 px/frame (half a box width): after a 3-frame gap the old box no longer overlaps the new one,
    # only the prediction does.
    frames = [[box(100 + 20 * t, 100)] if not 6 <= t < 9 else [] for t in range(14)]
    out = run(tracker, frames)
    assert all(list(x) == [1] for t, x in enumerate(out) if t >= 1 and len(x))
    assert list(out[9]) == [1]


def test_iou_tracker_without_motion_loses_fast_objects_in_gaps():
    # The same gap defeats the IoU tracker: documented difference, not a bug.
    tracker = IouTracker(min_hits=2, max_age=5)
    frames = [[box(100 + 20 * t, 100)] if not 6 <= t < 9 else [] for t in range(12)]
    out = run(tracker, frames)
    assert list(out[5]) == [1] and list(out[10]) == [2]


@pytest.mark.parametrize("name", TRACKERS)
def test_similarity_is_injectable(name):
    def centre_closeness(tracks: np.ndarray, dets: np.ndarray) -> np.ndarray:
        ct = (tracks[:, :2] + tracks[:, 2:]) / 2
        cd = (dets[:, :2] + dets[:, 2:]) / 2
        return -np.linalg.norm(ct[:, None] - cd[None], axis=2)  # minus the distance in px

    # 60 px a frame: boxes 40 px wide never overlap, but their centres stay within 70 px.
    frames = [[box(100 + 60 * t, 100)] for t in range(6)]
    assert [list(x) for x in run(TRACKERS[name](min_hits=1), frames)] == [[t + 1] for t in range(6)]
    tracker = TRACKERS[name](min_hits=1, iou_threshold=-70, similarity=centre_closeness)
    assert [list(x) for x in run(tracker, frames)] == [[1]] * 6


def test_bytetrack_low_score_boxes_continue_but_never_start_tracks():
    tracker = ByteTracker(min_hits=1)
    frames = [[box(100 + 5 * t, 100), box(400, 300)] for t in range(5)]
    scores = [[0.9, 0.3]] + [[0.3, 0.3]] * 4  # the first object fades to a low score
    out = run(tracker, frames, scores=scores)
    assert [list(x) for x in out] == [[1, -1]] * 5
    # Below low_score a detection is ignored entirely.
    assert list(tracker.update(np.array([box(125, 100)]), [0.05])) == [-1]


def _relabelled(ids: list[int]) -> list[int]:
    """Track IDs numbered by first appearance (-1 kept), to compare runs whose counters differ."""
    first: dict[int, int] = {}
    return [-1 if i < 0 else first.setdefault(i, len(first)) for i in ids]


@pytest.mark.parametrize("name", TRACKERS)
def test_an_object_alone_is_tracked_as_in_a_crowd(name):
    # Alone, a face takes the shortcuts for 0 and 1 boxes (every pair at once, no solver); beside a
    # far-away crowd with contested pairs it takes the general path. Its IDs and boxes must not differ.
    rng = np.random.default_rng(2)
    crowd_xy = rng.uniform(2000, 2300, (40, 2))  # overlapping each other, never the face
    alone, crowd = TRACKERS[name](min_hits=2), TRACKERS[name](min_hits=2)
    ids_alone, ids_crowd = [], []
    for t in range(40):
        seen = t not in (9, 10, 25)  # the face is missed on a few frames
        face = np.array([box(100 + 3 * t + rng.normal(0, 1), 150 + rng.normal(0, 1), 60, 80)] * seen)
        score = np.array([0.3 if t in (15, 16) else 0.9] * seen)  # low-score frames: ByteTrack's 2nd stage
        others = np.c_[crowd_xy, crowd_xy + 50] + 2 * t + rng.normal(0, 2, (40, 4))
        ids_alone += list(alone.update(face.reshape(-1, 4), score))
        ids_crowd += list(
            crowd.update(np.r_[face.reshape(-1, 4), others], np.r_[score, np.full(40, 0.9)])[: int(seen)]
        )
        np.testing.assert_array_equal(alone.smoothed, crowd.smoothed[: int(seen)])
    assert _relabelled(ids_alone) == _relabelled(ids_crowd)
    assert set(ids_alone) - {-1}  # the face was tracked


# --- end to end: synthetic scene, MOT metrics, benchmark -------------------------------------


@pytest.mark.parametrize("name", TRACKERS)
def test_synthetic_scene_scores_well_under_mot_metrics(name):
    data = synthetic_frames(30, 40, seed=3)
    tracker = TRACKERS[name](min_hits=1)
    gt, pred = [], []
    for f, (xyxy, scores, truth) in enumerate(data, 1):
        ids = tracker.update(xyxy, scores)
        gt += [(f, t, b) for t, b in zip(truth, xyxy, strict=True)]
        pred += [(f, t, b) for t, b in zip(ids, xyxy, strict=True) if t >= 0]
    report = evaluate_mot(*(MotSequence.create(*zip(*rows, strict=True)) for rows in (gt, pred)))
    assert report.num_switches == 0 and report.mota > 0.9 and report.idf1 > 0.9


def test_bench_rows_and_table():
    rows = run_tracker_bench(sizes=(5, 20), frames=3, warmup=1)
    assert [(r["tracker"], r["objects"]) for r in rows] == [(t, n) for n in (5, 20) for t in TRACKERS_BY_KIND]
    assert all(r["ms_per_frame"] > 0 and r["frames"] == 3 for r in rows)
    assert rows[0]["vs_iou"] == 1.0
    table = format_tracker_bench(rows)
    assert "track.bytetrack" in table and "ms_per_frame" in table


# --- stage shells ---------------------------------------------------------------------------


def frame(source: str, seq: int, boxes, scores=None, labels=None) -> Frame:
    dets = Detections.create(np.array(boxes, float).reshape(-1, 4), scores, label=labels)
    return Frame(source, seq, seq / 10, 0.0, np.zeros((4, 4, 3), np.uint8), dets)


@pytest.mark.parametrize(
    "stage_cls,options",
    [(IouTrackStage, IouTrackOptions), (SortStage, SortOptions), (ByteTrackStage, ByteTrackOptions)],
)
def test_stage_fills_track_ids_per_source(stage_cls, options):
    stage = stage_cls(options(min_hits=1), StageContext(stage_id="t"))
    assert stage.stateful
    ids = {}
    for t in range(4):  # two sources interleaved, same boxes: independent trackers
        for src, x in (("a", 100), ("b", 300)):
            out = stage.process(frame(src, t, [box(x + 3 * t, 100), box(x + 100, 300)], labels=["p", "p"]))
            assert list(out.detections.label) == ["p", "p"]
            ids[src, t] = list(out.detections.track_id)
    assert all(v == [1, 2] for v in ids.values())
    assert stage.context.report["track_ids"] == {"a": 2, "b": 2}
    # A source that ends and starts again continues its counter: IDs are never reused.
    assert stage.end_stream("a") == []
    out = stage.process(frame("a", 0, [box(100, 100)]))
    assert list(out.detections.track_id) == [3]


def test_stage_keeps_boxes_unless_smoothing():
    boxes = [[box(100 + 5 * t + (2 if t % 2 else -2), 100)] for t in range(6)]
    plain = SortStage(SortOptions(min_hits=1), StageContext(stage_id="t"))
    smooth = SortStage(SortOptions(min_hits=1, smooth_boxes=True), StageContext(stage_id="t"))
    for t, b in enumerate(boxes):
        f = frame("a", t, b)
        np.testing.assert_array_equal(plain.process(f).detections.xyxy, f.detections.xyxy)
        got = smooth.process(f).detections
        assert got.xyxy.dtype == np.float32 and list(got.track_id) == [1]
    assert not np.allclose(got.xyxy, f.detections.xyxy)


def test_options_are_validated_and_kinds_registered():
    with pytest.raises(ValidationError):
        SortOptions(max_ages=3)
    with pytest.raises(ValidationError):
        ByteTrackOptions(low_score=0.6, high_score=0.5)
    with pytest.raises(ValidationError):
        IouTrackOptions(iou_threshold=1.5)
    assert get_kind("track.sort") is SortStage
    assert get_kind("track.bytetrack") is ByteTrackStage
    assert get_kind("track.iou") is IouTrackStage
