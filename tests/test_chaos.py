"""Chaos: worker processes killed with SIGKILL at random moments of a recorded file lose nothing.
The results equal a clean run's, byte for byte."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import HAVE_PROC, alive, spawned_workers

REPO = Path(__file__).resolve().parents[1]
PIPELINE = """
version: 1
sources:
  - {id: cam0, uri: samples/faces_female_and_male.mp4}
stages:
  - {id: pace, kind: debug.fault, with: {delay_ms: 60}}
  - id: faces
    kind: detect.haar
    placement: %s
    workers: 2
    with: {scale_factor: 1.1, min_neighbors: 5, min_size: [30, 30]}
  - {id: results, kind: sink.jsonl, with: {path: results.jsonl}}
"""
CMD = [sys.executable, "-c", "import sys; from pipeline.cli import entry; entry(sys.argv[1:])"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_PROC, reason="needs /proc (Linux)")
def test_killing_workers_three_times_changes_no_result(tmp_path: Path) -> None:
    clean, chaos = tmp_path / "clean", tmp_path / "chaos"
    (tmp_path / "thread.yaml").write_text(PIPELINE % "thread")
    (tmp_path / "process.yaml").write_text(PIPELINE % "process")
    subprocess.run(
        [*CMD, "run", str(tmp_path / "thread.yaml"), "-o", str(clean), "-q"],
        cwd=REPO,
        check=True,
        timeout=120,
    )

    rng = random.Random(7)
    proc = subprocess.Popen([*CMD, "run", str(tmp_path / "process.yaml"), "-o", str(chaos), "-q"], cwd=REPO)
    kills = 0
    try:
        deadline = time.monotonic() + 90
        while kills < 3:
            assert proc.poll() is None, f"the run ended after {kills} kill(s): make it slower"
            assert time.monotonic() < deadline
            workers = spawned_workers(proc.pid)
            if len(workers) < 2:  # a restarted worker is still coming up
                time.sleep(0.05)
                continue
            time.sleep(rng.uniform(0.2, 0.8))
            victim = rng.choice(workers)
            if alive(victim):
                os.kill(victim, signal.SIGKILL)
                kills += 1
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    expected = (clean / "results.jsonl").read_bytes()
    assert expected.count(b"\n") == 56
    assert (chaos / "results.jsonl").read_bytes() == expected
    summary = (chaos / "summary.json").read_text()
    assert '"restarts": 3' in summary or '"restarts": 4' in summary, summary
