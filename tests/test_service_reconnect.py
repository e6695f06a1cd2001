"""A camera that drops off and comes back: the API shows running -> reconnecting -> running.

The camera is a real MJPEG-over-HTTP server (tests/mjpeg_camera.py) read by OpenCV's FFmpeg."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")

from pipeline.config import config_from_dict  # noqa: E402
from pipeline.service.embedded import EmbeddedService  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from mjpeg_camera import MJPEGCamera  # noqa: E402


def _state(client, sid: str) -> dict:
    return next(s for s in client.get("/api/streams").json() if s["id"] == sid)


def _wait_state(client, sid: str, state: str, timeout_s: float = 20.0, min_frames: int = 0) -> dict:
    deadline, seen = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        seen = _state(client, sid)
        if seen["state"] == state and seen["frames"] >= min_frames:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{sid} never reached {state} (last seen {seen})")


@pytest.mark.slow
def test_a_camera_that_drops_is_shown_reconnecting_then_running(tmp_path):
    camera = MJPEGCamera(fps=15).start()
    config = config_from_dict(
        {
            "version": 1,
            "sources": [],
            "stages": [{"id": "draw", "kind": "render"}],
            "links": {"policy": "latest"},
        }
    )
    try:
        with EmbeddedService(config, tmp_path) as svc, httpx.Client(base_url=svc.url, timeout=30) as client:
            source = {
                "id": "door",
                "uri": camera.url,
                "open_timeout_s": 2,
                "read_timeout_s": 2,
                "reconnect": {"initial_delay_s": 0.2, "max_delay_s": 0.5},
            }
            assert client.post("/api/streams", json=source).status_code == 201
            before = _wait_state(client, "door", "running", min_frames=5)
            assert before["kind"] == "stream" and before["uri"] == camera.url

            camera.down()
            _wait_state(client, "door", "reconnecting")
            time.sleep(1.0)  # several refused reopenings
            gap = _state(client, "door")
            assert gap["state"] == "reconnecting" and gap["reconnects"] == 0
            assert client.get("/healthz").status_code == 200  # a reconnecting camera is alive

            camera.up()
            after = _wait_state(client, "door", "running", min_frames=gap["frames"] + 5)
            assert after["reconnects"] == 1
            assert 'vigil_source_reconnects_total{source="door"} 1.0' in client.get("/metrics").text
    finally:
        camera.stop()
