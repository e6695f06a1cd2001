"""The benchmarks package: ratios against a baseline measured in the same run, plain tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.table import format_table


def test_table_aligns_columns_and_marks_missing_cells():
    table = format_table([{"a": 1, "bb": "x"}, {"a": 22}])
    assert table.splitlines() == ["a   bb", "--  --", "1   x", "22  -"]
    assert format_table([]) == "(no rows)"


def test_transport_rows_are_ratios_to_queue():
    from benchmarks import transport

    rows = transport.run((64, 48), 5)
    by_link = {r["link"]: r for r in rows}
    assert by_link[transport.BASELINE]["x_queue"] == 1.0
    assert {"vigil inproc link", "vigil ipc link", "vigil tcp link"} <= set(by_link)


def test_library_packages_hold_no_benchmark_code():
    import importlib.util

    for gone in (
        "pipeline.bench",
        "models.bench",
        "stages.tracking.bench",
        "models.cli",
        "pipeline.cli_extra",
    ):
        assert importlib.util.find_spec(gone) is None, gone


@pytest.mark.parametrize(
    "name", ["transport", "pipeline", "models", "trackers", "classify", "serve", "soak", "events"]
)
def test_every_benchmark_module_has_run(name):
    import importlib

    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.run) and module.__doc__


def test_bench_pipeline_sets_the_pipeline_beside_a_sequential_loop(tmp_path, capsys):
    import json

    from pipeline.cli import main

    out = tmp_path / "pipe.json"
    argv = [
        "-q",
        "bench",
        "pipeline",
        str(Path(__file__).resolve().parents[1] / "configs" / "faces_haar.yaml"),
        "--source",
        "synthetic://96x64",
    ]
    assert main([*argv, "--max-frames", "3", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["x_sequential"] for r in rows][0] == 1.0 and rows[1]["x_sequential"] > 0
    assert all(r["frames"] == 3 for r in rows)
    assert "x_sequential" in capsys.readouterr().out


def test_bench_soak_samples_memory_threads_fds_and_latency(tmp_path, capsys):
    import json

    from pipeline.cli import main

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "soak.json"
    argv = ["-q", "bench", "soak", str(repo / "tests" / "data" / "configs" / "faces_jsonl.yaml")]
    argv += ["--source", str(repo / "samples" / "face_male_smiling.mp4"), "--minutes", "0.1"]
    argv += ["--interval", "2", "--output", str(tmp_path / "run"), "--json", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert len(result["samples"]) >= 2
    first = result["samples"][0]
    assert (
        first["rss_mb"] > 10 and first["threads"] >= 2 and first["fds"] >= 3 and first["latency_ms_p99"] > 0
    )
    assert set(result["growth"]) >= {"rss", "threads", "fds", "latency_p99"}
    assert "growth (last / first after warm-up)" in capsys.readouterr().out


def test_bench_pipeline_without_drops_stages_and_rewires_their_followers():
    from benchmarks.pipeline import _drop
    from pipeline.config import PipelineConfig
    from pipeline.errors import ConfigError

    config = PipelineConfig.model_validate(
        {
            "version": 1,
            "sources": [{"id": "a", "uri": "synthetic://32x32"}],
            "stages": [
                {"id": "faces", "kind": "detect.haar"},
                {"id": "draw", "kind": "render"},
                {"id": "out", "kind": "sink.jsonl", "after": "draw"},
            ],
        }
    )
    _drop(config, ["draw"])
    assert [(s.id, s.after) for s in config.stages] == [("faces", None), ("out", None)]
    with pytest.raises(ConfigError, match="no stage video"):
        _drop(config, ["video"])


@pytest.mark.model
@pytest.mark.slow
def test_bench_pipeline_sets_a_detector_pipeline_beside_its_model_alone(tmp_path, capsys):
    """The model's own throughput (ready tensors, async queue full) is the third row; every row
    gets its fps and CPU per frame as a ratio to it (issue 16)."""
    import json

    from pipeline.cli import main

    out = tmp_path / "pipe.json"
    config = Path(__file__).resolve().parents[1] / "configs" / "yolo_objects.yaml"
    argv = ["-q", "bench", "pipeline", str(config), "--source", "synthetic://160x120"]
    argv += ["--max-frames", "6", "--rounds", "1", "--without", "draw", "--without", "video"]
    assert main([*argv, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 3 and rows[2]["run"].startswith("model alone: yolox-nano")
    assert rows[2]["x_model"] == 1.0 and rows[2]["x_model_cpu"] == 1.0
    assert rows[1]["x_model"] > 0 and rows[1]["cpu_ms"] > 0
    # where the pipeline's CPU goes: each stage's own thread, then the rest of the process
    assert set(rows[1]["stages"]) == {"objects", "results"} and rows[1]["stages"]["objects"] > 0
    assert set(rows[1]["captures"]) == {"cam0"} and rows[1]["captures"]["cam0"] > 0  # making frames
    printed = capsys.readouterr().out
    assert "x_model" in printed and "stage objects" in printed and "the rest" in printed
    assert "capture cam0 (read, decode)" in printed


@pytest.mark.model
def test_bench_models_splits_a_detector_into_pre_inference_and_post():
    from benchmarks import models

    rows = models.run(["yolox-nano"], seconds=0.4, threads=1, backends=["openvino"])
    assert rows and all(r["pre_ms"] > 0 and r["infer_ms"] > 0 and r["post_ms"] > 0 for r in rows)


def test_capacity_cameras_start_evenly_spread_over_the_file_unless_in_lockstep():
    """N copies of one clip are N moments of the scene (camera i starts i/N into the file), as
    unsynchronised real cameras are; `lockstep` starts them all on the first frame."""
    from benchmarks.capacity import _cameras, cameras_for
    from pipeline.config import SourceConfig, load_config
    from pipeline.sources import open_source

    repo = Path(__file__).resolve().parents[1]
    config = load_config(repo / "configs" / "faces_haar.yaml")
    clip = SourceConfig(uri=str(repo / "samples" / "faces_female_and_male.mp4"))  # 56 frames, 12.5 fps
    cams = cameras_for(clip, fps=12.5, seconds=2.0)
    assert (cams.mode, cams.every, cams.frames, cams.duration_s) == ("spread", 1, 25, pytest.approx(4.48))
    spread = _cameras(config, cams, 4, 30)
    assert [s.start_s for s in spread.sources] == pytest.approx([0.0, 1.12, 2.24, 3.36])
    assert all(s.loop and s.realtime and s.max_frames == 30 for s in spread.sources)
    assert spread.links.policy == "lossless"
    firsts = []
    for source in spread.sources:
        reader = open_source(source)
        first = reader.read()
        reader.close()
        assert first is not None
        firsts.append(first.index)
    assert firsts == [0, 14, 28, 42]  # the frames at those times: four different moments

    locked = cameras_for(clip, fps=12.5, seconds=2.0, lockstep=True)
    assert locked.mode == "lockstep" and locked.duration_s is None
    assert [s.start_s for s in _cameras(config, locked, 4, 30).sources] == [0.0] * 4
    synthetic = cameras_for(SourceConfig(uri="synthetic://64x48?frames=20"), fps=25, seconds=1.0)
    assert synthetic.mode == "lockstep"  # no file to start part-way into


def test_capacity_report_says_how_the_cameras_started(capsys):
    from benchmarks.capacity import format_rows
    from pipeline.cli import main

    rows = [{"config": "gated", "cameras": 3, "start": "lockstep", "trials": []}]
    assert "cameras in lockstep: every copy shows the same frame" in format_rows(rows, 10, "3 s a trial")
    rows[0]["start"] = "spread"
    assert "camera i of N starts i/N into the file" in format_rows(rows, 10, "3 s a trial")
    with pytest.raises(SystemExit):
        main(["bench", "capacity", "--help"])
    assert "--lockstep" in capsys.readouterr().out
