"""A run killed with SIGKILL (no cleanup of its own) leaves nothing behind for long: its worker
processes exit within seconds, and the next run removes its socket folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from processes import HAVE_PROC, alive, children

from pipeline.rundir import RUN_DIR_PREFIX, remove_stale_run_dirs

REPO = Path(__file__).resolve().parents[1]
PIPELINE = """
version: 1
sources:
  - {id: cam0, uri: "synthetic://96x64?frames=100000&fps=50", realtime: true}
stages:
  - {id: sketch, kind: filter.sketch, placement: process, workers: 2}
  - {id: results, kind: sink.jsonl, with: {path: results.jsonl}}
"""


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_PROC, reason="needs /proc (Linux)")
def test_workers_of_a_killed_run_exit_and_its_sockets_are_cleaned(tmp_path: Path) -> None:
    config = tmp_path / "pipe.yaml"
    config.write_text(PIPELINE)
    cmd = [sys.executable, "-c", "import sys; from pipeline.cli import entry; entry(sys.argv[1:])"]
    proc = subprocess.Popen([*cmd, "run", str(config), "--output", str(tmp_path / "out"), "-q"], cwd=REPO)
    try:
        deadline = time.monotonic() + 180  # a bound for a hang, not a speed test: spawning is slow under load
        while len(workers := [p for p in children(proc.pid) if alive(p)]) < 2:
            assert proc.poll() is None, "the run ended before its workers started"
            assert time.monotonic() < deadline, "worker processes never started"
            time.sleep(0.2)
        while (
            not (tmp_path / "out" / "results.jsonl").exists()
            or not (tmp_path / "out" / "results.jsonl").stat().st_size
        ):
            assert time.monotonic() < deadline, "no frame got through"
            time.sleep(0.2)
        run_dirs = list(Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}{proc.pid}-*"))
        assert run_dirs, "the run made no socket folder"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in workers):
            assert time.monotonic() < deadline, f"orphaned workers still running: {workers}"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all(d.exists() for d in run_dirs)  # SIGKILL left them
    removed = remove_stale_run_dirs()
    assert set(run_dirs) <= set(removed) and not any(d.exists() for d in run_dirs)


def test_the_folder_of_a_live_run_is_kept(tmp_path: Path) -> None:
    mine = tmp_path / f"{RUN_DIR_PREFIX}{os.getpid()}-abc"
    gone = tmp_path / f"{RUN_DIR_PREFIX}999999999-abc"
    other = tmp_path / "vigil-something-else"
    for d in (mine, gone, other):
        d.mkdir()
    assert remove_stale_run_dirs(str(tmp_path)) == [gone]
    assert mine.exists() and other.exists() and not gone.exists()
