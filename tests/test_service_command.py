"""`vigil serve` as an operator runs it: a process, a port, SIGTERM drains and exits 0."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from pipeline.service.server import free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_serve_runs_until_sigterm_then_drains_and_leaves_valid_videos(tmp_path):
    port = free_port()
    cmd = [
        sys.executable, "-c", "from pipeline.cli import entry; entry()",
        "serve", str(REPO / "configs/live_sketch.yaml"), "--port", str(port), "--output", str(tmp_path),
        "--source", "synthetic://160x120?fps=25&frames=25", "--set", "sources.0.loop=true",
        "--set", "sources.0.realtime=true",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline, streams = time.monotonic() + 60, []
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                streams = httpx.get(f"http://127.0.0.1:{port}/api/streams", timeout=2).json()
                if streams and streams[0]["frames"] >= 25:  # past the end of the looped clip
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert streams and streams[0]["state"] == "running", streams
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["frames"] >= 25
    videos = list(tmp_path.glob("*.mp4"))
    assert videos, f"no video in {sorted(p.name for p in tmp_path.iterdir())}"
    cap, n = cv2.VideoCapture(str(videos[0])), 0
    while cap.grab():
        n += 1
    assert n == summary["frames"]
