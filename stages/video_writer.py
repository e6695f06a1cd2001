"""Video files that play everywhere: H.264 in MP4 through PyAV (its wheels ship libx264),
with OpenCV's VideoWriter as the fallback (mp4v, which Chrome, Firefox, VS Code and Jupyter
do not play) when PyAV is not installed, and for explicit fourcc codes and .avi files.
Used by sink.video and anything else that records clips."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

log = logging.getLogger("vigil.video")
H264_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}  # suffix -> muxer
H264_OPTIONS = {"preset": "veryfast", "crf": "23"}  # real-time friendly; visually clean at 23


class VideoWriter(Protocol):
    """Writes BGR uint8 frames of one size; `release` finalises the file (valid from there)."""

    codec: str

    def write(self, image: np.ndarray) -> None: ...

    def release(self) -> None: ...


class PyAVWriter:
    """H.264 (libx264, yuv420p) through PyAV; odd sizes are padded by one pixel (4:2:0 needs even)."""

    codec = "h264"

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import av

        self.size = size
        self._even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        muxer = H264_CONTAINERS.get(path.suffix.lower(), "mp4")
        self.container: Any = av.open(str(path), mode="w", format=muxer)
        rate = Fraction(fps).limit_denominator(1001)
        self.stream: Any = self.container.add_stream("libx264", rate=rate, options=dict(H264_OPTIONS))
        self.stream.width, self.stream.height = self._even
        self.stream.pix_fmt = "yuv420p"
        self._frame_type = av.VideoFrame
        self._n = 0
        self.failed: str | None = None  # the first write error; later frames are not written

    def write(self, image: np.ndarray) -> None:
        if self.failed is not None:
            return
        try:
            self._encode(image)
        except Exception as exc:  # e.g. a full disk: like OpenCV's writer, stop writing and say so once
            self.failed = f"{type(exc).__name__}: {exc}"
            log.error("cannot write to %s: %s", self.container.name, self.failed)

    def _encode(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self._even:
            pad_x, pad_y = self._even[0] - image.shape[1], self._even[1] - image.shape[0]
            image = cv2.copyMakeBorder(image, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        frame = self._frame_type.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts = self._n
        self._n += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def release(self) -> None:
        if self.container is None:
            return
        container, self.container = self.container, None
        try:
            if self.failed is None:
                for packet in self.stream.encode():  # flush the encoder's delayed frames
                    container.mux(packet)
        except Exception as exc:  # the caller checks that the file is readable
            log.error("cannot finish %s: %s: %s", container.name, type(exc).__name__, exc)
        finally:
            try:
                container.close()
            except Exception as exc:
                log.error("cannot close %s: %s: %s", container.name, type(exc).__name__, exc)


class OpenCVWriter:
    """cv2.VideoWriter with a fourcc code (mp4v, MJPG, XVID, ...)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], fourcc: str) -> None:
        self.codec = fourcc
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)

    def opened(self) -> bool:
        return bool(self.writer.isOpened())

    def write(self, image: np.ndarray) -> None:
        self.writer.write(np.ascontiguousarray(image))

    def release(self) -> None:
        self.writer.release()


def pyav_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def open_writer(
    path: Path, fps: float, size: tuple[int, int], fourcc: str | None = None
) -> VideoWriter | None:
    """A writer for `path`: H.264 via PyAV for MP4-like files unless `fourcc` asks for an OpenCV
    codec; OpenCV (mp4v for MP4, MJPG for .avi) otherwise. None when nothing could open it."""
    if fourcc is None and path.suffix.lower() in H264_CONTAINERS:
        if pyav_available():
            try:
                return PyAVWriter(path, fps, size)
            except Exception as exc:  # e.g. a PyAV build without libx264
                log.warning("cannot write H.264 to %s with PyAV (%s); falling back to OpenCV mp4v", path, exc)
        else:
            log.warning(
                "PyAV is not installed: writing %s as mp4v, which browsers do not play "
                "(pip install av for H.264)",
                path,
            )
    code = fourcc or ("MJPG" if path.suffix.lower() == ".avi" else "mp4v")
    writer = OpenCVWriter(path, fps, size, code)
    return writer if writer.opened() else None
