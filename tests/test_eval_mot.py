"""MOT metrics: hand-made cases, the published motmetrics values, and py-motmetrics itself."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.evaluation.mot import (
    MotReport,
    MotSequence,
    evaluate_mot,
    evaluate_paths,
    load_mot_jsonl,
    load_mot_txt,
)

SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")


def seq(rows: list[tuple[int, int, float]], frames=None) -> MotSequence:
    """rows: (frame, id, x) of 10x10 boxes at (x, 0)."""
    return MotSequence.create(
        [r[0] for r in rows], [r[1] for r in rows], [[r[2], 0, r[2] + 10, 10] for r in rows], frames
    )


# --- known answers --------------------------------------------------------------------------


def test_id_switch_and_idf1_by_hand():
    gt = seq([(f, 1, 0) for f in range(1, 5)])
    pred = seq([(1, 7, 0), (2, 7, 0), (3, 8, 1), (4, 8, 1)])
    r = evaluate_mot(gt, pred)
    assert (r.num_matches, r.num_switches, r.num_misses, r.num_false_positives) == (3, 1, 0, 0)
    assert r.mota == 0.75 and r.idtp == 2 and r.idf1 == 0.5 and r.idp == 0.5 and r.idr == 0.5
    assert r.motp == pytest.approx(2 * (1 - 9 / 11) / 4) and r.motp_iou == pytest.approx(1 - r.motp)
    assert r.num_fragmentations == 0 and r.mostly_tracked == 1


def test_miss_fragmentation_false_positive_and_threshold():
    gt = seq([(f, 1, 0) for f in range(1, 6)] + [(f, 2, 100) for f in range(1, 6)])
    # id 5 follows object 1 but misses frame 3; id 6 overlaps object 2 too little (IoU 1/3)
    pred = seq([(f, 5, 0) for f in (1, 2, 4, 5)] + [(f, 6, 105) for f in range(1, 6)])
    r = evaluate_mot(gt, pred)
    assert (r.num_matches, r.num_misses, r.num_false_positives, r.num_switches) == (4, 6, 5, 0)
    assert r.num_fragmentations == 1
    assert (r.mostly_tracked, r.partially_tracked, r.mostly_lost) == (1, 0, 1)  # 4/5 = 0.8 is "mostly"
    assert r.mota == pytest.approx(1 - 11 / 10) and r.precision == pytest.approx(4 / 9)
    loose = evaluate_mot(gt, pred, iou_threshold=0.3)
    assert loose.num_matches == 9 and loose.num_false_positives == 0


def test_empty_prediction_and_nan_metrics_serialise():
    r = evaluate_mot(seq([(1, 1, 0)]), seq([], frames=[1, 2]))
    assert r.num_misses == 1 and r.num_frames == 2 and r.idf1 == 0.0 and math.isnan(r.motp)
    d = r.to_dict()
    assert d["motp"] is None and json.loads(json.dumps(d))["num_misses"] == 1


def test_hota_known_answers():
    perfect = evaluate_mot(seq([(f, 1, 0) for f in range(1, 5)]), seq([(f, 9, 0) for f in range(1, 5)]))
    assert (perfect.hota, perfect.det_a, perfect.ass_a, perfect.loc_a) == pytest.approx((1, 1, 1, 1))
    # Detection perfect, identity split in two halves: AssA = 0.5 at every alpha.
    split = evaluate_mot(
        seq([(f, 1, 0) for f in range(1, 5)]), seq([(1, 7, 0), (2, 7, 0), (3, 8, 0), (4, 8, 0)])
    )
    assert split.det_a == pytest.approx(1) and split.ass_a == pytest.approx(0.5)
    assert split.hota == pytest.approx(0.5**0.5)
    # IoU 0.62 everywhere: a true positive for the 12 alphas 0.05 .. 0.60 only.
    gt = MotSequence.create([1, 2], [1, 1], [[0, 0, 100, 100]] * 2)
    pred = MotSequence.create([1, 2], [5, 5], [[0, 0, 100, 62]] * 2)
    r = evaluate_mot(gt, pred)
    assert r.hota == pytest.approx(12 / 19) and r.loc_a == pytest.approx((12 * 0.62 + 7) / 19)
    assert r.to_dict()["hota_curves"]["det_a"] == [1.0] * 12 + [0.0] * 7


# HOTA of the TUD files, from TrackEval's HOTA.eval_sequence run on the same boxes (no
# MOTChallenge preprocessing); ours agreed to 1e-15 when these were recorded.
TRACKEVAL_HOTA = {
    "TUD-Campus": (0.391397, 0.418047, 0.369121, 0.770052),
    "TUD-Stadtmitte": (0.397849, 0.392268, 0.408841, 0.737521),
}


# --- published values and py-motmetrics ---------------------------------------------------


def our_reports(media: Path) -> dict[str, MotReport]:
    reports = {
        s: evaluate_mot(
            load_mot_txt(media / "mot" / s / "gt.txt"), load_mot_txt(media / "mot" / s / "test.txt")
        )
        for s in SEQUENCES
    }
    return {**reports, "OVERALL": MotReport.combine(reports)}


def test_hota_matches_trackeval_on_tud(media):
    reports = our_reports(media)
    for name, expected in TRACKEVAL_HOTA.items():
        r = reports[name]
        assert (r.hota, r.det_a, r.ass_a, r.loc_a) == pytest.approx(expected, abs=1e-6)
    # Sequences combine as TrackEval's combine_sequences: TP/FN/FP summed, AssA and LocA
    # weighted by TP, which is what summing the per-alpha sums does.
    total = reports["TUD-Campus"].hota_sums + reports["TUD-Stadtmitte"].hota_sums
    assert reports["OVERALL"].hota_sums == total
    tp = np.add(reports["TUD-Campus"].hota_sums.tp, reports["TUD-Stadtmitte"].hota_sums.tp)
    weighted = sum(
        np.multiply(reports[s].hota_sums.curves()["ass_a"], reports[s].hota_sums.tp) for s in SEQUENCES
    )
    np.testing.assert_allclose(total.curves()["ass_a"], weighted / np.maximum(1, tp))


def test_matches_expected_motmetrics_values(media):
    expected = json.loads((media / "mot" / "EXPECTED_motmetrics.json").read_text())
    reports = our_reports(media)
    for name in (*SEQUENCES, "OVERALL"):
        got = reports[name].to_dict()
        for column, value in zip(expected["columns"], expected[name], strict=True):
            assert got[column] == pytest.approx(value, abs=1e-3), (name, column)


@pytest.fixture
def mm(monkeypatch):
    motmetrics = pytest.importorskip("motmetrics")
    # motmetrics 1.4 still calls np.asfarray, which NumPy 2 removed.
    monkeypatch.setattr(np, "asfarray", lambda a, dtype=float: np.asarray(a, dtype=dtype), raising=False)
    return motmetrics


COMPARED = (
    "idf1 idp idr recall precision num_unique_objects mostly_tracked partially_tracked mostly_lost "
    "num_false_positives num_misses num_switches num_fragmentations mota motp num_matches "
    "num_objects num_predictions idtp idfp idfn"
).split()


def assert_same(ours: MotReport, theirs) -> None:
    for metric in COMPARED:
        assert float(getattr(ours, metric)) == pytest.approx(float(theirs[metric]), abs=1e-9), metric


def test_agrees_with_py_motmetrics_on_tud(media, mm):
    accs = []
    for s in SEQUENCES:
        gt = mm.io.loadtxt(str(media / "mot" / s / "gt.txt"))
        hyp = mm.io.loadtxt(str(media / "mot" / s / "test.txt"))
        accs.append(mm.utils.compare_to_groundtruth(gt, hyp, "iou", distth=0.5))
    summary = mm.metrics.create().compute_many(
        accs, names=list(SEQUENCES), metrics=COMPARED, generate_overall=True
    )
    for name, report in our_reports(media).items():
        assert_same(report, summary.loc[name])


def random_sequences(rng: np.random.Generator) -> tuple[MotSequence, MotSequence]:
    """Walkers plus a noisy tracker with misses, false alarms, ID swaps and re-used IDs."""
    gt_rows, pred_rows, frames = [], [], np.arange(1, 61)
    for obj in range(8):
        start, length = rng.integers(1, 40), rng.integers(5, 40)
        x, y, vx = rng.uniform(0, 300), rng.uniform(0, 200), rng.uniform(-4, 4)
        pid = 100 + obj
        for f in range(start, min(start + length, 61)):
            box = [x + vx * f, y, x + vx * f + 40, y + 80]
            gt_rows.append((f, obj, box))
            if rng.random() < 0.15:
                continue  # miss
            if rng.random() < 0.05:
                pid = int(rng.integers(100, 110))  # identity change, sometimes to another's ID
            pred_rows.append((f, pid, list(np.add(box, rng.normal(0, 6, 4)))))
    for k, f in enumerate(rng.integers(1, 61, 15)):
        pred_rows.append((int(f), 1000 + k, list(rng.uniform(0, 300, 2)) * 2 + np.array([0, 0, 40, 80])))

    def make(rows: list) -> MotSequence:
        unique = list({(r[0], r[1]): r for r in reversed(rows)}.values())  # one box per ID and frame
        return MotSequence.create(
            [r[0] for r in unique], [r[1] for r in unique], [r[2] for r in unique], frames
        )

    return make(gt_rows), make(pred_rows)


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_py_motmetrics_on_random_tracks(mm, seed):
    gt, pred = random_sequences(np.random.default_rng(seed))
    acc = mm.MOTAccumulator()
    for f in np.union1d(gt.frames, pred.frames):
        (oids, ob), (hids, hb) = gt.at(f), pred.at(f)
        to_xywh = lambda b: np.c_[b[:, :2], b[:, 2:] - b[:, :2]]  # noqa: E731
        acc.update(oids, hids, mm.distances.iou_matrix(to_xywh(ob), to_xywh(hb), max_iou=0.5), frameid=int(f))
    theirs = mm.metrics.create().compute(acc, metrics=COMPARED, name="x").loc["x"]
    ours = evaluate_mot(gt, pred)
    assert ours.num_switches > 0 and ours.num_fragmentations > 0  # the case is not trivial
    assert_same(ours, theirs)


# --- files ----------------------------------------------------------------------------------


def write_jsonl(path: Path, sequences: dict[str, MotSequence]) -> None:
    """vigil's sink.jsonl form: one line per frame, frame = seq + 1."""
    with path.open("w") as out:
        for source, s in sequences.items():
            for f in s.frames:
                ids, boxes = s.at(f)
                dets = [
                    {"box": b.tolist(), "score": 1.0, "label": "person", "track_id": int(i)}
                    for i, b in zip(ids, boxes, strict=True)
                ]
                dets.append(
                    {"box": [0, 0, 5, 5], "score": 0.2, "label": "person", "track_id": None}
                )  # untracked
                out.write(
                    json.dumps({"source": source, "seq": int(f) - 1, "pts": 0.0, "detections": dets}) + "\n"
                )


def test_jsonl_and_txt_give_the_same_scores(media, tmp_path):
    campus = media / "mot" / "TUD-Campus"
    pred = load_mot_txt(campus / "test.txt")
    write_jsonl(tmp_path / "pred.jsonl", {"cam": pred})
    loaded = load_mot_jsonl(tmp_path / "pred.jsonl")
    assert len(loaded) == len(pred) and loaded.name == "cam"
    np.testing.assert_allclose(loaded.xyxy, pred.xyxy, atol=1e-9)
    direct = evaluate_mot(load_mot_txt(campus / "gt.txt"), pred).to_dict()
    assert evaluate_paths(campus / "gt.txt", tmp_path / "pred.jsonl").to_dict() == direct
    assert evaluate_paths(campus / "gt.txt", campus / "test.txt").to_dict() == direct


def test_multi_source_jsonl_is_scored_per_source_and_summed(media, tmp_path):
    gts = {s: load_mot_txt(media / "mot" / s / "gt.txt") for s in SEQUENCES}
    preds = {s: load_mot_txt(media / "mot" / s / "test.txt") for s in SEQUENCES}
    write_jsonl(tmp_path / "gt.jsonl", gts)
    write_jsonl(tmp_path / "pred.jsonl", preds)
    report = evaluate_paths(tmp_path / "gt.jsonl", tmp_path / "pred.jsonl")
    assert set(report.sequences) == set(SEQUENCES)
    assert report.to_dict()["idf1"] == pytest.approx(0.624296, abs=1e-6)
    assert "OVERALL" in report.format() and "TUD-Stadtmitte" in report.format()
    one = evaluate_paths(tmp_path / "gt.jsonl", tmp_path / "pred.jsonl", source="TUD-Campus")
    assert one.mota == pytest.approx(0.526462, abs=1e-6)
    with pytest.raises(ValueError, match="several sources"):
        load_mot_jsonl(tmp_path / "gt.jsonl")
    with pytest.raises(ValueError, match="no source 'nope'"):
        load_mot_jsonl(tmp_path / "gt.jsonl", source="nope")


def test_an_id_twice_in_one_frame_is_an_error():
    with pytest.raises(ValueError, match="id 1 twice in frame 2"):
        evaluate_mot(seq([(1, 1, 0), (2, 1, 0), (2, 1, 50)]), seq([]))


def test_bad_rows_are_reported_with_their_line(tmp_path):
    (tmp_path / "bad.txt").write_text("1,1,0,0,10,10\nnot,a,row\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        load_mot_txt(tmp_path / "bad.txt")
    (tmp_path / "conf.txt").write_text("1,1,0,0,10,10,1\n1,2,0,0,10,10,0\n")
    assert len(load_mot_txt(tmp_path / "conf.txt")) == 2
    assert len(load_mot_txt(tmp_path / "conf.txt", min_confidence=1)) == 1
