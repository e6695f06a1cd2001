"""How large a frame may be: image sizes read from file headers before decoding, and a guard for
decoded frames.

A 424 KB PNG can declare 20000 x 20000 pixels and make the decoder allocate 1.2 GB (RSS peaked at
12.7 GB in a pipeline). OpenCV has no header-only API and `cv2.imread` picks the decoder by the
file's content, not its suffix, so the size is read here from the first bytes of every format the
OpenCV build can decode (PNG, JPEG, BMP, GIF, WebP, TIFF/BigTIFF, PNM/PAM/PFM, Sun raster,
Radiance HDR, JPEG 2000, OpenEXR, AVIF). A file whose size cannot be read is not decoded either:
that is the only way to be sure a hostile file never reaches a decoder.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger("vigil.capture")

Size = tuple[int, int]
ReadAt = Callable[[int, int], bytes]  # (offset, length) -> at most length bytes

HEAD_BYTES = 64 * 1024  # formats that put their size at the start; JPEG and TIFF seek further
MAX_SEGMENTS = 4096  # markers, tags or boxes walked before giving up (a hostile file may loop)


def check_pixels(width: int, height: int, max_pixels: int) -> str | None:
    """Why a width x height image is refused, or None when it fits in max_pixels."""
    if width <= 0 or height <= 0:
        return f"declares an empty size {width}x{height}"
    if width * height > max_pixels:
        return f"{width}x{height} is {width * height} pixels, more than max_pixels ({max_pixels})"
    return None


def image_file_refusal(path: str | Path, max_pixels: int) -> str | None:
    """Why an image file must not be decoded (too large, or its size unreadable), or None."""
    try:
        size = image_size_from_header(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size is None:
        return "its size cannot be read from the header (unknown or damaged format); not decoded"
    return check_pixels(size[0], size[1], max_pixels)


def image_size_from_header(path: str | Path) -> Size | None:
    """(width, height) from an image file's header without decoding it; None if unknown."""
    with open(path, "rb") as f:

        def read_at(offset: int, length: int) -> bytes:
            f.seek(offset)
            return f.read(length)

        return _size(read_at)


def image_size_from_bytes(data: bytes) -> Size | None:
    """(width, height) from the first bytes of an encoded image; None if unknown."""
    return _size(lambda offset, length: data[offset : offset + length])


class FrameSizeGuard:
    """Skips decoded frames larger than max_pixels, with a warning for the first and every 100th
    (a video whose every frame is too large must not flood the log)."""

    def __init__(self, source_id: str, max_pixels: int) -> None:
        self.source_id, self.max_pixels, self.skipped = source_id, max_pixels, 0

    def allows(self, image: np.ndarray) -> bool:
        """True when the frame may go on; False (counted, logged) when it is too large."""
        reason = check_pixels(image.shape[1], image.shape[0], self.max_pixels)
        if reason is None:
            return True
        self.skipped += 1
        if self.skipped % 100 == 1:
            log.warning("source %s: skipped frame (%d so far): %s", self.source_id, self.skipped, reason)
        return False


# -------------------------------------------------------------------------------------- formats


def _size(read_at: ReadAt) -> Size | None:
    head = read_at(0, HEAD_BYTES)
    parse = next((p for magic, p in _BY_MAGIC if head.startswith(magic)), None)
    if parse is None and head[4:8] == b"ftyp":  # ISO base media (AVIF, HEIF): the box size comes first
        parse = _isobmff
    if parse is None:
        return None
    try:
        return parse(head, read_at)
    except (struct.error, ValueError, IndexError):  # truncated or damaged header
        return None


def _png(head: bytes, _: ReadAt) -> Size | None:
    if head[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", head[16:24])
    return w, h


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}


def _jpeg(_: bytes, read_at: ReadAt) -> Size | None:
    pos = 2
    for _segment in range(MAX_SEGMENTS):
        chunk = read_at(pos, 2)
        while chunk[:1] == b"\xff" and chunk[1:2] == b"\xff":  # fill bytes before a marker
            pos += 1
            chunk = read_at(pos, 2)
        if len(chunk) < 2 or chunk[0] != 0xFF:
            return None
        marker = chunk[1]
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", read_at(pos + 2, 2))
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", read_at(pos + 5, 4))
            return (w, h) if h else None  # height 0: given later by a DNL marker
        pos += 2 + length
    return None


def _bmp(head: bytes, _: ReadAt) -> Size | None:
    (dib,) = struct.unpack("<I", head[14:18])
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        w, h = struct.unpack("<HH", head[18:22])
        return w, h
    w, h = struct.unpack("<ii", head[18:26])
    return abs(w), abs(h)  # a negative height means top-down rows


def _gif(head: bytes, _: ReadAt) -> Size | None:
    w, h = struct.unpack("<HH", head[6:10])
    return w, h


def _webp(head: bytes, _: ReadAt) -> Size | None:
    if head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and head[20] == 0x2F:
        (bits,) = struct.unpack("<I", head[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _tiff(head: bytes, read_at: ReadAt) -> Size | None:
    end = "<" if head[:2] == b"II" else ">"
    big = struct.unpack(end + "H", head[2:4])[0] == 43
    if big:
        (ifd,) = struct.unpack(end + "Q", head[8:16])
        count_fmt, entry_fmt, entry_size = "Q", "HHQ8s", 20
    else:
        (ifd,) = struct.unpack(end + "I", head[4:8])
        count_fmt, entry_fmt, entry_size = "H", "HHI4s", 12
    count_size = struct.calcsize(count_fmt)
    (count,) = struct.unpack(end + count_fmt, read_at(ifd, count_size))
    entries = read_at(ifd + count_size, min(count, MAX_SEGMENTS) * entry_size)
    dims: dict[int, int] = {}
    for i in range(len(entries) // entry_size):
        tag, kind, _n, value = struct.unpack(end + entry_fmt, entries[i * entry_size : (i + 1) * entry_size])
        if tag in (256, 257):  # ImageWidth, ImageLength
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                return None
            dims[tag] = struct.unpack(end + fmt, value[: struct.calcsize(fmt)])[0]
    return (dims[256], dims[257]) if len(dims) == 2 else None


_PNM_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n?)*([^\s#]+)")


def _pnm(head: bytes, _: ReadAt) -> Size | None:
    if head[1:2] == b"7":  # PAM: WIDTH and HEIGHT lines
        w = re.search(rb"^WIDTH\s+(\d+)", head, re.M)
        h = re.search(rb"^HEIGHT\s+(\d+)", head, re.M)
        return (int(w.group(1)), int(h.group(1))) if w and h else None
    tokens: list[int] = []
    pos = 2
    while len(tokens) < 2:
        match = _PNM_TOKEN.match(head, pos)
        if match is None:
            return None
        tokens.append(int(match.group(1)))
        pos = match.end()
    return tokens[0], tokens[1]


def _sun(head: bytes, _: ReadAt) -> Size | None:
    w, h = struct.unpack(">II", head[4:12])
    return w, h


_HDR_SIZE = re.compile(rb"\n\n([-+])([XY]) +(\d+) +([-+])([XY]) +(\d+)")


def _hdr(head: bytes, _: ReadAt) -> Size | None:
    match = _HDR_SIZE.search(head)
    if match is None:
        return None
    axes = {match.group(2): int(match.group(3)), match.group(5): int(match.group(6))}
    return (axes[b"X"], axes[b"Y"]) if len(axes) == 2 else None


def _j2k_codestream(read_at: ReadAt, pos: int) -> Size | None:
    if read_at(pos, 4) != b"\xff\x4f\xff\x51":  # SOC then SIZ
        return None
    x, y, x0, y0 = struct.unpack(">IIII", read_at(pos + 8, 16))
    return x - x0, y - y0


def _jp2(_: bytes, read_at: ReadAt) -> Size | None:
    pos = 0
    for _box in range(MAX_SEGMENTS):
        header = read_at(pos, 16)
        if len(header) < 8:
            return None
        length, kind = struct.unpack(">I4s", header[:8])
        skip = 8
        if length == 1:
            (length,) = struct.unpack(">Q", header[8:16])
            skip = 16
        if kind == b"jp2c":
            return _j2k_codestream(read_at, pos + skip)
        if length == 0 or length < skip:
            return None
        pos += length
    return None


def _j2k(_: bytes, read_at: ReadAt) -> Size | None:
    return _j2k_codestream(read_at, 0)


def _exr(head: bytes, _: ReadAt) -> Size | None:
    pos = 8  # magic, version
    for _attr in range(MAX_SEGMENTS):
        name_end = head.index(b"\0", pos)
        if name_end == pos:  # end of header
            return None
        type_end = head.index(b"\0", name_end + 1)
        (size,) = struct.unpack("<i", head[type_end + 1 : type_end + 5])
        value = type_end + 5
        if head[pos:name_end] == b"dataWindow":
            x0, y0, x1, y1 = struct.unpack("<iiii", head[value : value + 16])
            return x1 - x0 + 1, y1 - y0 + 1
        pos = value + size
    return None


def _isobmff(head: bytes, _: ReadAt) -> Size | None:
    if head[8:12] not in (b"avif", b"avis", b"mif1", b"msf1", b"heic", b"heix"):
        return None
    # Every `ispe` (image spatial extent) property of every item: the largest one bounds them all.
    sizes = [struct.unpack(">II", head[m.end() + 4 : m.end() + 12]) for m in re.finditer(rb"ispe", head)]
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


_BY_MAGIC: list[tuple[bytes, Callable[[bytes, ReadAt], Size | None]]] = [
    (b"\x89PNG\r\n\x1a\n", _png),
    (b"\xff\xd8", _jpeg),
    (b"BM", _bmp),
    (b"GIF87a", _gif),
    (b"GIF89a", _gif),
    (b"RIFF", _webp),
    (b"II*\0", _tiff),
    (b"MM\0*", _tiff),
    (b"II+\0", _tiff),
    (b"MM\0+", _tiff),
    *((b"P" + bytes([c]), _pnm) for c in b"1234567"),
    (b"PF", _pnm),
    (b"Pf", _pnm),
    (b"\x59\xa6\x6a\x95", _sun),
    (b"#?", _hdr),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", _jp2),
    (b"\xff\x4f\xff\x51", _j2k),
    (b"\x76\x2f\x31\x01", _exr),
]
