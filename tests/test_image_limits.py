"""Frame size limits: image sizes from headers (before any decoding), oversized frames skipped.

Headers come from three places: the real media in ../shared, OpenCV's own encoders for every
format this build decodes, and hand-made bytes for the cases no encoder writes (a 20000 x 20000
PNG, big-endian and BigTIFF, fill bytes before a JPEG marker, top-down BMP).
"""

from __future__ import annotations

import logging
import struct
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline import sources
from pipeline.config import SourceConfig
from pipeline.frame import Frame, SourceInfo
from pipeline.image_limits import (
    FrameSizeGuard,
    check_pixels,
    image_file_refusal,
    image_size_from_bytes,
    image_size_from_header,
)
from pipeline.sources import Captured, ImageReader, Reader, capture_loop

IMAGE = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)  # h=37, w=53


def test_real_media_headers_match_decoded_size(media: Path) -> None:
    files = sorted(p for p in media.rglob("*") if p.suffix.lower() in sources.IMAGE_SUFFIXES)
    assert files, f"no images under {media}"
    for path in files[:: max(1, len(files) // 40)]:  # ~40 files across the collection
        decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert decoded is not None, path
        assert image_size_from_header(path) == (decoded.shape[1], decoded.shape[0]), path


ENCODED = [
    (".png", []),
    (".jpg", []),
    (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    (".bmp", []),
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),  # lossy: VP8
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossless: VP8L
    (".tif", []),
    (".ppm", []),
    (".pam", []),
    (".pfm", []),
    (".ras", []),
    (".hdr", []),
    (".jp2", []),
    (".avif", []),
    (".gif", []),
]


@pytest.mark.parametrize(("ext", "params"), ENCODED, ids=[f"{e}{p[-1:] or ''}" for e, p in ENCODED])
def test_header_size_of_every_decodable_format(tmp_path: Path, ext: str, params: list[int]) -> None:
    image = IMAGE.astype(np.float32) / 255 if ext in (".pfm", ".hdr") else IMAGE
    try:
        ok, buf = cv2.imencode(ext, image, params)
    except cv2.error:
        pytest.skip(f"this OpenCV build cannot encode {ext}")
    assert ok
    assert image_size_from_bytes(buf.tobytes()) == (53, 37)
    path = tmp_path / f"x{ext}"
    path.write_bytes(buf.tobytes())
    assert image_size_from_header(path) == (53, 37)  # reads from the file (TIFF seeks to its IFD at the end)


def _png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"


def _tiff(order: bytes, big: bool, w: int, h: int) -> bytes:
    e = "<" if order == b"II" else ">"
    if big:
        head = order + struct.pack(e + "HHHQ", 43, 8, 0, 16)
        entries = [struct.pack(e + "HHQ", 256, 4, 1) + struct.pack(e + "I", w) + b"\0" * 4]
        entries.append(struct.pack(e + "HHQ", 257, 16, 1) + struct.pack(e + "Q", h))
        return head + struct.pack(e + "Q", 2) + b"".join(entries)
    head = order + struct.pack(e + "HI", 42, 8)
    entries = [struct.pack(e + "HHIH", 256, 3, 1, w) + b"\0\0", struct.pack(e + "HHII", 257, 4, 1, h)]
    return head + struct.pack(e + "H", 2) + b"".join(entries)


HAND_MADE = [
    ("png_bomb", _png_header(20000, 20000), (20000, 20000)),
    # APP0, a fill byte before the marker, then a baseline frame header
    (
        "jpeg_fill_bytes",
        b"\xff\xd8\xff\xe0\x00\x04ab\xff\xff\xc0\x00\x11\x08" + struct.pack(">HH", 30000, 40000),
        (40000, 30000),
    ),
    ("jpeg_dnl_height", b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x01\x00", None),
    ("jpeg_scan_before_frame", b"\xff\xd8\xff\xda\x00\x02", None),
    ("bmp_top_down", b"BM" + b"\0" * 12 + struct.pack("<Iii", 40, 640, -480), (640, 480)),
    ("bmp_os2", b"BM" + b"\0" * 12 + struct.pack("<IHH", 12, 320, 200), (320, 200)),
    ("tiff_big_endian", _tiff(b"MM", False, 7000, 9000), (7000, 9000)),
    ("tiff_little_endian", _tiff(b"II", False, 7000, 9000), (7000, 9000)),
    ("bigtiff", _tiff(b"II", True, 70000, 90000), (70000, 90000)),
    ("webp_vp8x", b"RIFF\0\0\0\0WEBPVP8X" + b"\0" * 8 + (19999).to_bytes(3, "little") * 2, (20000, 20000)),
    ("pnm_comments", b"P6\n# made by hand\n 20000\n# h\n20000\n255\n", (20000, 20000)),
    ("j2k_codestream", b"\xff\x4f\xff\x51\0\0\0\0" + struct.pack(">IIII", 110, 60, 10, 0), (100, 60)),
    # OpenCV allocates the logical screen (2.7 GB for this one); a frame larger than it is refused
    ("gif_screen", b"GIF89a" + struct.pack("<HH", 20000, 20000) + b"\x80\0\0", (20000, 20000)),
    ("truncated_png", _png_header(1, 1)[:18], None),
    ("tiff_ifd_past_end", b"II*\0" + struct.pack("<I", 10**6), None),
    ("unknown_format", b"not an image at all", None),
    ("empty", b"", None),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in HAND_MADE], ids=[c[0] for c in HAND_MADE])
def test_hand_made_headers(data: bytes, expected: tuple[int, int] | None) -> None:
    assert image_size_from_bytes(data) == expected


def test_check_pixels() -> None:
    assert check_pixels(8000, 5000, 40_000_000) is None
    assert (
        check_pixels(8001, 5000, 40_000_000)
        == "8001x5000 is 40005000 pixels, more than max_pixels (40000000)"
    )
    assert "empty" in (check_pixels(0, 10, 100) or "")


def test_file_refusal_reasons(tmp_path: Path) -> None:
    bomb, unknown, ok = tmp_path / "bomb.png", tmp_path / "odd.png", tmp_path / "ok.png"
    bomb.write_bytes(_png_header(20000, 20000))
    unknown.write_bytes(b"\0" * 100)
    cv2.imwrite(str(ok), IMAGE)
    assert "20000x20000 is 400000000 pixels, more than max_pixels (40000000)" in (
        image_file_refusal(bomb, 40_000_000) or ""
    )
    assert "cannot be read from the header" in (image_file_refusal(unknown, 40_000_000) or "")
    assert image_file_refusal(ok, 40_000_000) is None
    assert image_file_refusal(tmp_path / "gone.png", 40_000_000) is not None


def test_image_folder_skips_oversized_file_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The 424 KB 20000 x 20000 PNG case, scaled down: max_pixels below one image's size; that
    image is never handed to cv2.imread, the others are read, the skip is logged."""
    big = np.zeros((100, 100, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), IMAGE)
    cv2.imwrite(str(tmp_path / "b.png"), big)
    cv2.imwrite(str(tmp_path / "c.jpg"), IMAGE)
    decoded: list[str] = []
    real_imread = cv2.imread

    def spy(path: str, *args: int) -> np.ndarray | None:
        decoded.append(Path(path).name)
        return real_imread(path, *args)

    monkeypatch.setattr(sources.cv2, "imread", spy)
    reader = ImageReader(SourceConfig(uri=str(tmp_path), max_pixels=53 * 37))
    decoded.clear()
    with caplog.at_level(logging.WARNING, logger="vigil.capture"):
        got = []
        while (c := reader.read()) is not None:
            got.append(c.index)
    assert got == [0, 2]
    assert "b.png" not in decoded
    assert (
        "skipped unreadable image" in caplog.text
        and "b.png" in caplog.text
        and "max_pixels (1961)" in caplog.text
    )


class _BigFrames(Reader):
    """A reader whose every other frame is larger than the limit (as a video or camera might send)."""

    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0
        self.info = SourceInfo("cam", "x", "file", 25.0, 53, 37, n, live=False)

    def read(self, decode: bool = True, stop: threading.Event | None = None) -> Captured | None:
        if self.i >= self.n:
            return None
        self.i += 1
        shape = (37, 53, 3) if self.i % 2 else (370, 530, 3)
        return Captured(np.zeros(shape, np.uint8), self.i / 25, self.i - 1)


def test_decoded_frames_over_the_limit_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    sent: list[object] = []
    cfg = SourceConfig(id="cam", uri="x.mp4", max_pixels=53 * 37)
    with caplog.at_level(logging.WARNING, logger="vigil.capture"):
        end = capture_loop(_BigFrames(6), cfg, lambda m: sent.append(m) or True, threading.Event())
    frames = [m for m in sent if isinstance(m, Frame)]
    assert end.reason == "eos" and end.error is None
    assert [f.index for f in frames] == [0, 2, 4]
    assert caplog.text.count("skipped frame") == 1  # the first is logged, then every 100th


def test_frame_size_guard_counts() -> None:
    guard = FrameSizeGuard("cam", 100)
    assert guard.allows(np.zeros((10, 10, 3), np.uint8))
    assert not guard.allows(np.zeros((10, 11, 3), np.uint8))
    assert guard.skipped == 1
