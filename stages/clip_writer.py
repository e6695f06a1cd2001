"""The one place `sink.clips` opens a video file: H.264 MP4 through PyAV (libx264), else OpenCV mp4v.

`open_clip_writer(path, fps, size)` returns a `ClipWriter`: `write(image, pts)` with BGR images
and media times in seconds (kept in the file, so skipped frames keep their timing), and
`close()`, which finishes the file. When a shared writer module lands (`stages/video_writer.py`,
`open_writer(path, fps, size)`), this function is the single place to point at it.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

log = logging.getLogger("vigil")

_TIME_BASE = Fraction(1, 1000)  # pts in milliseconds
_warned: set[str] = set()  # fallback reasons already logged


class ClipWriter(Protocol):
    """A video file being written; `codec` names what it encodes with (h264, mp4v)."""

    codec: str

    def write(self, image: np.ndarray, pts: float) -> None: ...

    def close(self) -> None: ...


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) made even (H.264 in yuv420p needs it): one pixel row/column is cut."""
    return size[0] & ~1, size[1] & ~1


class _AvWriter:
    """libx264 through PyAV, pts in ms (variable frame rate)."""

    codec = "h264"

    def __init__(self, path: Path, fps: float, size: tuple[int, int], av: Any) -> None:
        self.size = even_size(size)
        self._container = av.open(str(path), mode="w", format="mp4")
        try:
            stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = self.size
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = _TIME_BASE
            stream.options = {"preset": "ultrafast", "crf": "23"}  # least CPU: the frame path pays for it
        except Exception:
            self._container.close()
            raise
        self._stream = stream
        self._frame_type = av.VideoFrame
        self._last = -1

    def write(self, image: np.ndarray, pts: float) -> None:
        w, h = self.size
        frame = self._frame_type.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="bgr24")
        self._last = max(self._last + 1, int(round(pts / _TIME_BASE)))  # strictly increasing for the muxer
        frame.pts, frame.time_base = self._last, _TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


class _OpenCvWriter:
    """OpenCV mp4v at a constant rate (pts ignored): when PyAV or libx264 is missing."""

    codec = "mp4v"

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.size = size
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise OSError(f"OpenCV cannot open {path} for writing")

    def write(self, image: np.ndarray, pts: float) -> None:
        w, h = self.size
        if (image.shape[1], image.shape[0]) != (w, h):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(image))

    def close(self) -> None:
        self._writer.release()


def open_clip_writer(path: Path, fps: float, size: tuple[int, int]) -> ClipWriter:
    """A writer for `path` (MP4): H.264 with PyAV when it has libx264, else OpenCV mp4v (logged once)."""
    try:
        import av

        return _AvWriter(path, fps, size, av)
    except Exception as exc:  # ImportError, or an FFmpeg build without libx264
        if str(exc) not in _warned:
            _warned.add(str(exc))
            log.warning("clips: H.264 unavailable (%s); writing mp4v with OpenCV", exc)
        return _OpenCvWriter(path, fps, size)
