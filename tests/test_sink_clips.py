"""`sink.clips`: pre-roll ring buffer, clip windows, retention, and real H.264 files that decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from event_frames import event, frame

from pipeline.stage import StageContext
from stages.clip_buffer import ClipFile, ClipWindow, FrameRing, expired_clips, pre_roll_start
from stages.event_model import out_events
from stages.sink_clips import ClipsSink, ClipsSinkOptions

av = pytest.importorskip("av", reason="PyAV is in the events and dev extras")


def test_pre_roll_start_and_ring():
    assert pre_roll_start([0.0, 0.1, 0.2, 0.3], 0.15) == 1
    assert pre_roll_start([0.0, 0.1, 0.2, 0.3], 0.2) == 2
    assert pre_roll_start([0.5, 0.6], 0.1) == 0  # not enough history: everything there is
    ring = FrameRing(seconds=0.25)
    for i in range(10):
        ring.push(i / 10, np.full((2, 2, 3), i, np.uint8))
    assert [round(p, 1) for p, _ in ring.frames] == [0.6, 0.7, 0.8, 0.9]  # 0.25 s + the frame before
    assert [round(p, 1) for p, _ in ring.since(0.65)] == [0.6, 0.7, 0.8, 0.9]
    capped = FrameRing(seconds=10, max_frames=3)
    for i in range(10):
        capped.push(i / 10, np.zeros((1, 1, 3), np.uint8))
    assert len(capped.frames) == 3


def test_clip_window_extends():
    window = ClipWindow(1.0, 3.0, ["a"])
    assert window.covers(2.5) and not window.covers(3.5)
    window.extend("b", 2.5, 2.0)
    assert window.end_pts == 4.5 and window.event_ids == ["a", "b"]
    assert not window.done(4.5) and window.done(4.6)


def test_retention_removes_the_oldest_first():
    files = [ClipFile(Path(f"c{i}.mp4"), 100, 1000.0 + i) for i in range(5)]
    assert expired_clips(files, 2000.0, max_clips=3) == [Path("c0.mp4"), Path("c1.mp4")]
    assert expired_clips(files, 2000.0, max_bytes=250) == [Path("c0.mp4"), Path("c1.mp4"), Path("c2.mp4")]
    assert expired_clips(files, 1003.5, max_age_s=2.0) == [Path("c0.mp4"), Path("c1.mp4")]
    assert expired_clips(files, 2000.0) == []


def _decode(path: Path) -> tuple[str, list[float], list[float]]:
    """Codec name, frame times (s) and mean grey level of each decoded frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times, levels = [], []
        for f in container.decode(stream):
            times.append(float(f.pts * f.time_base))
            levels.append(float(f.to_ndarray(format="gray").mean()))
        return stream.codec_context.name, times, levels


def test_clips_start_before_the_event_are_h264_and_merge_overlapping_events(tmp_path):
    options = ClipsSinkOptions(pre_roll_s=1.0, post_roll_s=0.5, max_clips=5)
    sink = ClipsSink(options, StageContext("clips", output_dir=tmp_path))
    sink.setup()
    planned = {30: event("e30", 3.0), 33: event("e33", 3.3), 55: event("e55", 5.5)}
    seen = {}
    for i in range(70):  # 10 fps, grey level 4 * i tells the frames apart
        out = sink.process(frame(i, events=(planned[i],) if i in planned else (), size=(161, 121)))
        seen.update({e.id: e for e in out_events(out)})
    sink.close()
    assert seen["e30"].clip == seen["e33"].clip == "clips/e30.mp4"  # 3.3 falls inside e30's clip
    assert seen["e55"].clip == "clips/e55.mp4"
    assert seen["e30"].clip_offset_s == pytest.approx(1.0) and seen["e33"].clip_offset_s == pytest.approx(1.3)
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["e30.mp4", "e55.mp4"]  # no .part left
    codec, times, levels = _decode(tmp_path / "clips/e30.mp4")
    assert codec == "h264"
    assert len(times) == 19  # pts 2.0 .. 3.8 (the last event + post-roll)
    assert times[0] == 0.0 and times[-1] == pytest.approx(1.8)
    assert levels[0] == pytest.approx(4 * 20, abs=3)  # the first frame is the source's frame at pts 2.0
    event_frame = times.index(pytest.approx(seen["e30"].clip_offset_s))
    assert levels[event_frame] == pytest.approx(4 * 30, abs=3)  # the event's own frame at its offset
    assert sink.context.report["clips"] == {
        "folder": str(tmp_path / "clips"),
        "written": 2,
        "deleted": 0,
        "codec": "h264",
    }


def test_retention_is_enforced_as_clips_complete(tmp_path):
    sink = ClipsSink(
        ClipsSinkOptions(pre_roll_s=0.2, post_roll_s=0.2, max_clips=2), StageContext("c", output_dir=tmp_path)
    )
    for i in range(60):
        events = (event(f"k{i:02d}", i / 10),) if i % 10 == 5 else ()
        sink.process(frame(i, events=events))
    sink.close()
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["k45.mp4", "k55.mp4"]
    assert sink.deleted == 4


def test_without_pyav_clips_fall_back_to_opencv_mp4v(tmp_path, monkeypatch):
    import sys

    import cv2

    from stages.video_writer import open_writer

    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    writer = open_writer(tmp_path / "c.mp4", 10.0, (64, 48), muxer="mp4", preset="ultrafast")
    assert writer is not None
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8), i / 10)
    writer.release()
    assert writer.codec == "mp4v"
    capture = cv2.VideoCapture(str(tmp_path / "c.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()


def test_the_pre_roll_buffer_is_bounded_by_memory(tmp_path):
    # 160x120 frames are 57,600 bytes: 0.3 MiB holds 5 of them, so 1 s of pre-roll becomes 0.4 s
    options = ClipsSinkOptions(pre_roll_s=1.0, post_roll_s=0.2, buffer_mb=0.3)
    sink = ClipsSink(options, StageContext("clips", output_dir=tmp_path))
    for i in range(40):
        out = sink.process(frame(i, events=(event("m30", 3.0),) if i == 30 else ()))
        if i == 30:
            assert out_events(out)[0].clip_offset_s == pytest.approx(0.4)
    sink.close()
    assert len(_decode(tmp_path / "clips/m30.mp4")[1]) == 5 + 2  # 2.6 .. 3.0, then 3.1, 3.2
