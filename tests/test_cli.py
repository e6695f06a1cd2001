"""The CLI verbs beyond run: eval, stages, models, bench — their output and exit codes are contracts."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
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


# --- one CLI package: version, stages listing, closed pipes, models verify ---------------------

REPO = Path(__file__).resolve().parents[1]
ENTRY = "import sys; from pipeline.cli import entry; entry(sys.argv[1:])"


def test_version_comes_from_the_distribution(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"vigil {metadata.version('vigil-analytics')}")


def test_stages_hides_debug_kinds_unless_all(capsys):
    assert main(["stages"]) == 0
    listing = capsys.readouterr().out
    assert "debug.fault" not in listing and "vigil stages --all" in listing
    assert main(["stages", "--all"]) == 0
    assert "debug.fault" in capsys.readouterr().out
    assert main(["stages", "debug.fault"]) == 0  # still documented when asked for by name
    assert "crash_on" in capsys.readouterr().out


def test_stages_show_literal_values(capsys):
    assert main(["stages", "track.iou"]) == 0
    assert "matcher (greedy | hungarian; default 'greedy')" in capsys.readouterr().out
    assert main(["stages"]) == 0
    listing = capsys.readouterr().out
    assert "policy (auto | lossless | latest; default 'auto')" in listing
    assert "placement (thread | process; default 'thread')" in listing


def test_stage_summaries_are_whole_sentences(capsys):
    from pipeline.docs import summary
    from pipeline.stage import kinds

    assert main(["stages", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for kind, cls in kinds().items():
        line = next(x for x in lines if x.split()[:1] == [kind])
        assert line.split(None, 1)[1] == summary(cls.__doc__), kind
    # sink.display's first sentence ends before the docstring's line break does
    display = next(x for x in lines if x.split()[:1] == ["sink.display"])
    assert display.rstrip().endswith("Show frames in a window.")


def test_summary_takes_the_first_sentence_across_lines():
    from pipeline.docs import summary

    doc = """Save images, filtered by labels and thinned by
    time, e.g. one a second. More detail follows.

    A second paragraph."""
    assert summary(doc) == "Save images, filtered by labels and thinned by time, e.g. one a second."
    assert summary("No full stop here\n\nnext") == "No full stop here"
    assert summary(None) == ""


@pytest.mark.parametrize("argv", [["stages"], ["stages", "--all"], ["--help"]])
def test_closed_stdout_exits_quietly(argv):
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before vigil writes a byte (`vigil stages | head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""


def test_stdout_closed_after_the_first_line_exits_quietly(tmp_path):
    # the shell's `vigil stages | head -1`
    err = tmp_path / "err.txt"
    vigil = f"{shlex.quote(sys.executable)} -c {shlex.quote(ENTRY)} stages --all"
    proc = subprocess.run(
        ["bash", "-c", f"{vigil} 2>{shlex.quote(str(err))} | head -1; echo rc=${{PIPESTATUS[0]}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.splitlines() == ["Stage kinds (vigil stages KIND for options):", "rc=0"]
    assert err.read_text() == ""


def test_broken_pipe_inside_a_command_is_still_an_internal_error(monkeypatch, capsys):
    import pipeline.cli.run as run_commands

    def failing(args):
        raise BrokenPipeError("a worker's pipe")

    monkeypatch.setattr(run_commands, "cmd_stages", failing)
    assert main(["stages"]) == 1
    assert "internal error: BrokenPipeError" in capsys.readouterr().err


def test_models_verify_without_files_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIGIL_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["models", "verify"]) == 4
    captured = capsys.readouterr()
    assert "no model files found in" in captured.err and str(tmp_path / "models") in captured.err
    assert "set VIGIL_MODELS or run vigil models fetch NAME" in captured.err
    assert "0 file(s) checked" not in captured.out


def test_bench_trackers_prints_ratios_to_the_iou_tracker(tmp_path, capsys):
    out = tmp_path / "trackers.json"
    assert main(["bench", "trackers", "--objects", "5", "--frames", "3", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "vs_iou" in table and "track.bytetrack" in table
    rows = json.loads(out.read_text())
    assert {r["tracker"] for r in rows} == {"track.iou", "track.sort", "track.bytetrack"}
    assert all(r["vs_iou"] > 0 for r in rows) and rows[0]["vs_iou"] == 1.0


def test_bench_rejects_a_bad_frame_size(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["bench", "transport", "--size", "big"])
    assert stop.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err
