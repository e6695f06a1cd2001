"""Service security (loopback by default, a token anywhere else, masked credentials), the
event buffer behind GET /api/events, and the `vigil serve` command's refusals."""

from __future__ import annotations

import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")

from pipeline.cli import main  # noqa: E402
from pipeline.config import config_from_dict  # noqa: E402
from pipeline.errors import ConfigError  # noqa: E402
from pipeline.frame import Event, Frame  # noqa: E402
from pipeline.service.auth import is_loopback, read_token  # noqa: E402
from pipeline.service.embedded import EmbeddedService  # noqa: E402
from pipeline.service.state import EventBuffer  # noqa: E402

TOKEN = "s3cret-token-0123456789"
CONFIG = {
    "version": 1,
    "sources": [{"id": "syn", "uri": "synthetic://96x64?fps=25&frames=25", "loop": True, "realtime": True}],
    "stages": [{"id": "draw", "kind": "render"}],
}


def _frame(seq: int, *events: Event) -> Frame:
    return Frame("door", seq, seq / 25, 1000.0 + seq, np.zeros((4, 4, 3), np.uint8), events=events)


def test_event_buffer_numbers_events_and_keeps_the_newest():
    buf = EventBuffer(size=3)
    buf.add(_frame(0))
    assert buf.last == 0 and buf.since(0) == []
    buf.add(_frame(1, Event("line_cross", "line", 7, {"direction": "in"})))
    buf.add(_frame(2, Event("zone_enter", "zone", 7, {"zone": "aisle"}), Event("zone_leave", "zone", 8)))
    assert [e["seq"] for e in buf.since(0)] == [1, 2, 3]
    assert buf.since(1)[0] == {
        "seq": 2, "time": 1002.0, "source": "door", "frame": 2, "type": "zone_enter", "stage": "zone",
        "track_id": 7, "zone": "aisle",
    }  # fmt: skip
    buf.add(_frame(3, Event("line_cross", "line", 9)))
    assert [e["seq"] for e in buf.since(0)] == [2, 3, 4]  # bounded: the oldest went


def test_only_loopback_runs_without_a_token(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("camera-host")
    with pytest.raises(ConfigError, match="--token-file"):
        read_token(None, "0.0.0.0")
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(ConfigError, match="too short"):
        read_token(short, "0.0.0.0")
    good = tmp_path / "token"
    good.write_text(TOKEN + "\n")
    assert read_token(good, "0.0.0.0") == TOKEN and read_token(None, "127.0.0.1") is None


def test_vigil_serve_refuses_a_public_address_without_a_token(capsys):
    assert main(["serve", "configs/faces_haar.yaml", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "--token-file" in capsys.readouterr().err


def test_the_token_guards_every_route_but_healthz_and_credentials_stay_masked(tmp_path):
    with EmbeddedService(config_from_dict(CONFIG), tmp_path, token=TOKEN) as svc:
        with httpx.Client(base_url=svc.url, timeout=30) as anon:
            assert anon.get("/healthz").status_code == 200
            for path in ("/", "/api/streams", "/metrics", "/api/events", "/api/streams/syn/snapshot.jpg"):
                assert anon.get(path).status_code == 401, path
            assert anon.get("/api/streams", headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert anon.get("/api/streams", params={"token": TOKEN}).status_code == 200  # for <img> tags
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=svc.url, timeout=30, headers=auth) as client:
            assert client.get("/").text.startswith("<!doctype html>")
            cam = {"id": "cam", "uri": "rtsp://admin:hunter2@127.0.0.1:9/live", "open_timeout_s": 1}
            r = client.post("/api/streams", json=cam)
            assert r.status_code == 422 and "hunter2" not in r.text and "admin:***@" in r.text

            svc.service.tap(_frame(0, Event("line_cross", "line", 3, {"direction": "out"})))
            events = client.get("/api/events", params={"since": 0}).json()
            assert [e["type"] for e in events["events"]] == ["line_cross"]
            assert client.get("/api/events", params={"since": events["last"]}).json()["events"] == []
            assert client.get("/api/events", params={"since": "x"}).status_code == 422


@pytest.mark.model
def test_metrics_time_each_model(tmp_path, models_dir):
    config = config_from_dict(
        {
            "version": 1,
            "sources": [{"id": "clip", "uri": "samples/face_male_smiling.mp4", "max_frames": 8}],
            "stages": [{"id": "faces", "kind": "detect.face", "with": {"model": "yunet"}}],
        }
    )
    with EmbeddedService(config, tmp_path) as svc, httpx.Client(base_url=svc.url, timeout=30) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and client.get("/api/streams").json()[0]["frames"] < 8:
            time.sleep(0.1)
        text = client.get("/metrics").text
    assert 'vigil_model_inference_seconds_count{model="yunet",stage="faces"}' in text, text[-2000:]
