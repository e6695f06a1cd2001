"""sink.video's writer: H.264 MP4 through PyAV by default (plays in browsers), OpenCV otherwise."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline import Pipeline
from stages.video_writer import open_writer

av = pytest.importorskip("av")


def _probe(path: Path) -> tuple[str, int, int, int]:
    """(codec, frames decoded by PyAV, frames decoded by OpenCV, width)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, width = stream.codec_context.name, stream.codec_context.width
        decoded = sum(1 for _ in container.decode(stream))
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    return codec, decoded, n, width


def _frames(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    w, h = size
    return [np.full((h, w, 3), (i * 9) % 255, np.uint8) for i in range(n)]


def test_mp4_is_h264_with_every_frame(tmp_path):
    writer = open_writer(tmp_path / "a.mp4", 29.97, (320, 240))
    assert writer is not None and writer.codec == "h264"
    for image in _frames(37, (320, 240)):
        writer.write(image)
    writer.release()
    assert _probe(tmp_path / "a.mp4") == ("h264", 37, 37, 320)


def test_odd_sizes_are_padded_to_even_for_yuv420(tmp_path):
    writer = open_writer(tmp_path / "odd.mp4", 25, (161, 121))
    assert writer is not None
    for image in _frames(5, (161, 121)):
        writer.write(image)
    writer.release()
    assert _probe(tmp_path / "odd.mp4") == ("h264", 5, 5, 162)


def test_a_fourcc_or_avi_uses_opencv(tmp_path):
    for name, fourcc, codec in (("a.mp4", "mp4v", "mpeg4"), ("b.avi", None, "mjpeg")):
        writer = open_writer(tmp_path / name, 25, (64, 48), fourcc)
        assert writer is not None
        for image in _frames(4, (64, 48)):
            writer.write(image)
        writer.release()
        assert _probe(tmp_path / name)[:3] == (codec, 4, 4)


def test_without_pyav_it_falls_back_to_mp4v_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "av", None)  # what `import av` sees when PyAV is not installed
    with caplog.at_level(logging.WARNING, logger="vigil.video"):
        writer = open_writer(tmp_path / "c.mp4", 25, (64, 48))
    assert writer is not None and writer.codec == "mp4v"
    assert "PyAV is not installed" in caplog.text


def test_sink_video_writes_h264_with_the_source_frame_count(tmp_path):
    run = Pipeline.from_dict(
        {
            "version": 1,
            "sources": [{"id": "syn", "uri": "synthetic://200x150?frames=42&fps=25"}],
            "stages": [{"id": "draw", "kind": "render"}, {"id": "video", "kind": "sink.video"}],
        },
        output_dir=tmp_path,
    )
    run.run()
    assert _probe(tmp_path / "annotated.mp4") == ("h264", 42, 42, 200)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_write_error_stops_writing_and_is_logged_not_raised(caplog):
    # /dev/full fails every write with ENOSPC, as a full disk does
    from stages.video_writer import PyAVWriter

    with caplog.at_level(logging.ERROR, logger="vigil.video"):
        writer = PyAVWriter(Path("/dev/full"), 25, (64, 48))
        for image in _frames(60, (64, 48)):
            writer.write(image)
        writer.release()
    assert writer.failed is not None and "cannot write to /dev/full" in caplog.text


def test_h264_is_encoded_as_configured_and_keeps_the_colours(tmp_path, media):
    """The settings written into the stream (x264 records them) are the CPU-lean ones: one thread
    when asked, `subme=1:me=dia:partitions=none` on the default preset; the OpenCV colour conversion keeps a real
    clip's pictures close to the source (BT.601 video range, as a player decodes them)."""
    cap = cv2.VideoCapture(str(media / "videos" / "face_woman_emotions_pexels_wolfganglanger.mp4"))
    source = [cap.read()[1] for _ in range(12)]
    h, w = source[0].shape[:2]
    writer = open_writer(tmp_path / "a.mp4", 25.0, (w, h), threads=1)
    assert writer is not None
    for image in source:
        writer.write(image)
    writer.release()
    settings = (tmp_path / "a.mp4").read_bytes()
    assert b"threads=1 " in settings and b"subme=1 " in settings and b"me=dia " in settings
    assert b"analyse=0x3:0 " in settings  # partitions=none: no partition search in P/B frames
    decoded = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    psnr = [cv2.PSNR(image, decoded.read()[1]) for image in source]
    assert min(psnr) > 33, psnr
