"""`vigil batch --ray` on a real local two-node Ray cluster (ray.cluster_utils.Cluster): six
copies of a clip, each output equal to `vigil run`'s, and a Ray worker killed mid-task."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.batch import BatchOptions, BatchReport, run_batch
from pipeline.batch.manifest import read_marker
from pipeline.cli import main
from pipeline.config import load_config

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "faces_haar.yaml"
CLIP = REPO / "samples" / "faces_female_and_male.mp4"  # 56 frames
OBJECT_STORE = 80 * 1024 * 1024  # small: the tasks pass only paths and a config


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and a second node, one CPU each, started once for the module."""
    c = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False},
    )
    c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    c.wait_for_nodes()
    try:
        yield c.address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """results.jsonl of `vigil run` on the clip."""
    out = tmp_path_factory.mktemp("ref")
    assert main(["run", str(CONFIG), "--source", str(CLIP), "--output", str(out), "-q"]) == 0
    return (out / "results.jsonl").read_bytes()


def six_copies(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = [folder / f"clip{i}.mp4" for i in range(6)]
    for p in paths:
        shutil.copyfile(CLIP, p)
    return paths


def assert_all_complete(report: BatchReport, out: Path, reference: bytes) -> None:
    assert report.exit_code == 0
    assert [r.status for r in report.rows] == ["completed"] * 6
    assert all(r.frames == 56 for r in report.rows)
    for row in report.rows:
        folder = Path(row.output)
        assert (folder / "results.jsonl").read_bytes() == reference
        assert (folder / "annotated.mp4").stat().st_size > 0
        assert read_marker(folder).state == "complete"
    saved = json.loads((out / "batch.json").read_text())
    assert saved["completed"] == 6 and saved["mode"].startswith("ray")


def test_six_files_on_two_nodes_give_what_vigil_run_gives(cluster, reference, tmp_path):
    six_copies(tmp_path / "in")
    out = tmp_path / "out"
    report = run_batch(
        load_config(CONFIG), [str(tmp_path / "in")], BatchOptions(out, ray=cluster, quiet=True)
    )
    assert_all_complete(report, out, reference)
    assert {r.attempts for r in report.rows} == {1}


def test_a_worker_killed_mid_task_is_retried_and_every_output_is_complete(cluster, reference, tmp_path):
    six_copies(tmp_path / "in")
    out = tmp_path / "out"
    found: list[BatchReport] = []
    batch = threading.Thread(
        target=lambda: found.append(
            run_batch(load_config(CONFIG), [str(tmp_path / "in")], BatchOptions(out, ray=cluster, quiet=True))
        )
    )
    batch.start()
    victim = out / "clip3.mp4"
    deadline = time.monotonic() + 240
    while not (marker := read_marker(victim)) or marker.state != "running":
        assert batch.is_alive() and time.monotonic() < deadline, "clip3 never started"
        time.sleep(0.02)
    os.kill(marker.pid, signal.SIGKILL)  # the Ray worker process running that file
    batch.join(300)
    assert not batch.is_alive()
    (report,) = found
    assert_all_complete(report, out, reference)
    assert report.rows[3].attempts == 2 and read_marker(victim).attempt == 2


def test_ctrl_c_leaves_complete_or_partial_outputs_and_starts_nothing_more(cluster, tmp_path):
    six_copies(tmp_path / "in")
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from pipeline.cli import entry; entry()", "batch", str(CONFIG)]
    command += [str(tmp_path / "in"), "-o", str(out), "--ray", cluster, "-q"]
    proc = subprocess.Popen(command, cwd=REPO, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not any((m := read_marker(out / f"clip{i}.mp4")) and m.state == "complete" for i in range(6)):
            assert proc.poll() is None and time.monotonic() < deadline, "no file completed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # the driver only: Ray's workers belong to the cluster
        assert proc.wait(120) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    saved = json.loads((out / "batch.json").read_text())
    assert saved["interrupted"] and saved["completed"] >= 1 and saved["pending"] >= 1
    for row in saved["files"]:  # complete, or clearly not: a folder is complete only when its run was
        marker = read_marker(Path(row["output"]))
        state = marker.state if marker else None
        assert row["status"] in ("completed", "stopped", "pending"), row
        assert (state == "complete") == (row["status"] == "completed"), row
        assert (state is None) == (row["status"] == "pending"), row
