"""Live sources: a dropped camera/stream is reopened with growing delays, the gap is logged."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pipeline.config import SourceConfig
from pipeline.errors import SourceError
from pipeline.live_reader import LiveReader
from pipeline.redact import redact_uri


class ScriptedCap:
    """A cv2.VideoCapture stand-in that delivers `n` frames, then fails every read (a drop)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def isOpened(self) -> bool:
        return True

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 6, 3), np.uint8)

    def get(self, _prop: int) -> float:
        return 30.0

    def release(self) -> None:
        pass


class RecordingStop:
    """A stop event that records the waits the reader asks for (and never stops)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False

    def is_set(self) -> bool:
        return False


def _reader(monkeypatch, opens, **reconnect) -> LiveReader:
    script = list(opens)
    monkeypatch.setattr(LiveReader, "_open", lambda self: script.pop(0) if script else None)
    cfg = SourceConfig(
        id="door",
        uri="rtsp://127.0.0.1:8554/door",
        reconnect={"initial_delay_s": 0.5, "max_delay_s": 2.0, **reconnect},
    )
    return LiveReader(cfg, cfg.uri, "stream")


def test_a_dropped_stream_is_reopened_with_growing_delays_and_the_gap_logged(monkeypatch, caplog):
    # up 3 frames, drop; three failed reopens; back for 2 frames; drop; reopens fail until the limit
    reader = _reader(monkeypatch, [ScriptedCap(3), None, None, None, ScriptedCap(2)], max_attempts=4)
    stop = RecordingStop()
    with caplog.at_level(logging.WARNING, logger="vigil.capture"):
        frames = []
        while (got := reader.read(stop=stop)) is not None:
            frames.append(got)
    assert len(frames) == 5
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]  # numbering continues across the gap
    assert stop.waits == [0.5, 1.0, 2.0, 2.0, 0.5, 1.0, 2.0, 2.0]  # doubling, capped at max_delay_s
    text = caplog.text
    assert text.count("dropped; reconnecting") == 2
    assert "reconnected after" in text and "(4 attempt(s))" in text
    assert "giving up after 4 reconnect attempts" in text
    assert reader.info.live and reader.info.uri == "rtsp://127.0.0.1:8554/door"


def test_a_stream_that_never_opens_is_a_clear_error(monkeypatch):
    with pytest.raises(SourceError, match="cannot open stream rtsp://127.0.0.1:8554/door"):
        _reader(monkeypatch, [None])


def test_passwords_are_not_logged():
    assert redact_uri("rtsp://admin:s3cret@10.0.0.5/live") == "rtsp://admin:***@10.0.0.5/live"


@pytest.mark.slow
def test_a_camera_down_longer_than_the_stall_timeout_does_not_end_the_run(tmp_path) -> None:
    """The watchdog is for stages that stop moving; a camera that is reconnecting is alive."""
    import time

    from mjpeg_camera import MJPEGCamera

    from pipeline import Pipeline

    camera = MJPEGCamera(fps=15).start()
    pipe = {
        "version": 1,
        "sources": [
            {
                "id": "door",
                "uri": camera.url,
                "open_timeout_s": 2,
                "read_timeout_s": 1,
                "reconnect": {"initial_delay_s": 0.2, "max_delay_s": 0.4},
            }
        ],
        "stages": [{"id": "results", "kind": "sink.jsonl"}],
        "links": {"policy": "latest", "stall_timeout_s": 0.5},
    }
    seen_after = 0
    try:
        with Pipeline.from_dict(pipe, output_dir=tmp_path) as run:
            frames = iter(run)
            for n, _ in enumerate(frames):
                if n == 5:
                    camera.down()  # four stall timeouts without a frame
                    time.sleep(2.0)
                    camera.up()
                    break
            for _ in frames:
                seen_after += 1
                if seen_after == 10:
                    break
    finally:
        camera.stop()
    assert seen_after == 10, "no frame after the camera came back"
    assert run.summary["status"] == "stopped" and run.summary["error"] is None, run.summary["error"]
