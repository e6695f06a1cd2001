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
    "name", ["transport", "pipeline", "models", "trackers", "classify", "serve", "events"]
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
