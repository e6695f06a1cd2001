"""Per-stage metrics and the run summary table."""

from __future__ import annotations

from pipeline.metrics import StageMetrics, format_table


def test_stage_summary_counts_latencies_and_queue() -> None:
    m = StageMetrics("faces", "detect.dnn", workers=2)
    assert m.to_dict()["fps"] is None and m.to_dict()["latency_ms_p50"] is None
    for latency in (0.010, 0.020, 0.030):
        m.frame_in()
        m.frame_out(latency)
    m.frame_out(None)  # a frame without a timing still counts
    m.error()
    m.sample_queue(4)
    m.sample_queue(1)
    m.first_in, m.last_out = 10.0, 12.0  # 4 frames out over 2 s, whatever this machine's speed
    row = m.to_dict()
    assert (row["frames_in"], row["frames_out"], row["errors"], row["workers"]) == (3, 4, 1, 2)
    assert row["fps"] == 2.0
    assert row["latency_ms_p50"] == 20.0 and row["queue_depth_max"] == 4 and row["queue_depth_mean"] == 2.5
    table = format_table({"faces": {**row, "report": {"models": []}}}).splitlines()
    assert table[0].split()[:3] == ["stage", "kind", "in"]
    assert table[2].split()[:5] == ["faces", "detect.dnn", "3", "4", "2.0"]


def test_stage_cpu_per_frame_when_the_stage_thread_measured_it() -> None:
    m = StageMetrics("draw", "render")
    assert m.to_dict()["cpu_ms_per_frame"] is None  # a pool or process stage: not measured
    for _ in range(4):
        m.frame_in()
    m.cpu_s = 0.010
    assert m.to_dict()["cpu_ms_per_frame"] == 2.5
    table = format_table({"draw": m.to_dict()}).splitlines()
    assert "cpu ms" in table[0] and "2.50" in table[2].split()


def test_a_run_summary_gives_each_threaded_stage_its_cpu(tmp_path) -> None:
    """The stage threads (setup left out) and the capture threads measure their own CPU: a real run
    reports it per frame."""
    from pathlib import Path

    from pipeline import Pipeline

    clip = Path(__file__).resolve().parents[1] / "samples" / "faces_female_and_male.mp4"
    run = Pipeline.from_dict(
        {
            "version": 1,
            "sources": [{"id": "cam0", "uri": str(clip)}],
            "stages": [{"id": "sketch", "kind": "filter.sketch"}, {"id": "results", "kind": "sink.jsonl"}],
        },
        output_dir=tmp_path,
    )
    run.run()
    stages = run.summary["stages"]
    assert stages["sketch"]["cpu_ms_per_frame"] > 0.05  # an edge filter on every 480x270 frame
    assert stages["results"]["cpu_ms_per_frame"] is not None
    assert run.summary["sources"]["cam0"]["cpu_ms_per_frame"] > 0.05  # its capture thread decodes H.264
