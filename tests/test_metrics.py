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
