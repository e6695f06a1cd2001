"""The CLI verbs beyond run: eval, stages, models, bench — their output and exit codes are contracts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main

DATA = Path(__file__).parent / "data" / "eval"


def test_eval_detect_on_coco_json(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert (
        main(
            [
                "eval",
                "detect",
                "--gt",
                str(DATA / "coco_gt.json"),
                "--pred",
                str(DATA / "coco_pred.json"),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert 0 < report["map"] < 1 and 0 < report["ap50"] <= 1
    assert "AP" in capsys.readouterr().out


def test_eval_track_on_tud_campus(media, tmp_path, capsys):
    out = tmp_path / "mot.json"
    seq = media / "mot" / "TUD-Campus"
    assert (
        main(
            [
                "eval",
                "track",
                "--gt",
                str(seq / "gt.txt"),
                "--pred",
                str(seq / "test.txt"),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    flat = json.dumps(report)
    assert (
        "0.5264" in flat or abs(_find(report, "mota") - 0.526462) < 1e-3
    )  # MOTChallenge value (EXPECTED_motmetrics.json)
    assert "IDF1" in capsys.readouterr().out.upper()


def _find(obj, key):
    if isinstance(obj, dict):
        if key in obj and isinstance(obj[key], (int, float)):
            return obj[key]
        for v in obj.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


def test_eval_missing_file_is_a_clear_error(tmp_path, capsys):
    code = main(
        ["eval", "detect", "--gt", str(tmp_path / "nope.json"), "--pred", str(DATA / "coco_pred.json")]
    )
    err = capsys.readouterr().err
    assert code != 0 and "nope.json" in err and "Traceback" not in err


def test_stages_lists_every_kind_and_documents_one(capsys):
    assert main(["stages"]) == 0
    listing = capsys.readouterr().out
    for kind in (
        "detect.haar",
        "detect.yolo",
        "classify.emotion",
        "track.bytetrack",
        "analytics.line",
        "sink.jsonl",
    ):
        assert kind in listing
    assert main(["stages", "detect.haar"]) == 0
    one = capsys.readouterr().out
    assert "scale_factor" in one and "min_neighbors" in one
    assert main(["stages", "detect.har"]) == 2
    assert "detect.haar" in capsys.readouterr().err


@pytest.mark.model
def test_models_list_json_and_verify(capsys):
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows} if isinstance(rows, list) else set(rows)
    assert {"yunet", "yolox-nano", "age-gender-recognition-retail-0013"} <= names
    assert main(["models", "verify", "yunet"]) == 0


def test_bench_transport_prints_ratios(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["bench", "transport", "--size", "320x240", "--frames", "30", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    links = {r["link"] for r in rows}
    assert {"vigil inproc link", "vigil ipc link", "vigil tcp link", "queue.Queue hand-off"} <= links
    assert all(r["x_queue"] is not None and r["ms_per_frame"] > 0 for r in rows)
