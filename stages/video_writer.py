"""Video files that play everywhere: H.264 in MP4 through PyAV (its wheels ship libx264),
with OpenCV's VideoWriter as the fallback (mp4v, which Chrome, Firefox, VS Code and Jupyter
do not play) when PyAV is not installed, and for explicit fourcc codes and .avi files.
Used by sink.video and sink.clips. `write(image)` gives frames a constant rate; `write(image, pts)`
keeps each frame's media time in seconds (clips of a source read with `every:` keep their timing)."""

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
# On the default preset: the cheapest sub-pixel refinement and diamond motion search (measured on
# two 25 fps clips, 768x432 people and 640x360 face: 26-39 % less CPU a frame than plain veryfast
# for 2-7 % larger files, -0.2 dB PSNR), and whole-macroblock motion only (no sub-partitions: a
# further 15-24 % less CPU for 1-5 % larger files, -0.15 dB); an encoder on the frame path wants the CPU.
H264_DEFAULT_PARAMS = "subme=1:me=dia:partitions=none"
_TIME_BASE = Fraction(1, 1000)  # timed writes: pts in milliseconds


class VideoWriter(Protocol):
    """Writes BGR uint8 frames of one size; `release` finalises the file (valid from there)."""

    codec: str

    def write(self, image: np.ndarray, pts: float | None = None) -> None: ...

    def release(self) -> None: ...


class PyAVWriter:
    """H.264 (libx264, yuv420p) through PyAV; odd sizes are padded by one pixel (4:2:0 needs even)."""

    codec = "h264"

    def __init__(
        self,
        path: Path,
        fps: float,
        size: tuple[int, int],
        muxer: str | None = None,
        preset: str | None = None,
        threads: int | None = None,
    ) -> None:
        import av

        self.size = size
        self._even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        muxer = muxer or H264_CONTAINERS.get(path.suffix.lower(), "mp4")
        self.container: Any = av.open(str(path), mode="w", format=muxer)
        rate = Fraction(fps).limit_denominator(1001)
        options = {**H264_OPTIONS, **({"preset": preset} if preset else {"x264-params": H264_DEFAULT_PARAMS})}
        if threads:  # x264's frame threads cost ~20 % more CPU a frame: one thread beside busy stages
            options["threads"] = str(threads)
        try:
            self.stream: Any = self.container.add_stream("libx264", rate=rate, options=options)
            self.stream.width, self.stream.height = self._even
            self.stream.pix_fmt = "yuv420p"
        except Exception:
            self.container.close()
            raise
        self._frame_type = av.VideoFrame
        self._n = 0
        self._timed: bool | None = None  # decided by the first write: with pts or without
        self.failed: str | None = None  # the first write error; later frames are not written

    def write(self, image: np.ndarray, pts: float | None = None) -> None:
        if self.failed is not None:
            return
        try:
            self._encode(image, pts)
        except Exception as exc:  # e.g. a full disk: like OpenCV's writer, stop writing and say so once
            self.failed = f"{type(exc).__name__}: {exc}"
            log.error("cannot write to %s: %s", self.container.name, self.failed)

    def _encode(self, image: np.ndarray, pts: float | None) -> None:
        if (image.shape[1], image.shape[0]) != self._even:
            pad_x, pad_y = self._even[0] - image.shape[1], self._even[1] - image.shape[0]
            image = cv2.copyMakeBorder(image, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        # OpenCV converts to 4:2:0 (BT.601 video range, as libswscale) in an eighth of swscale's time
        yuv = np.asarray(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2YUV_I420), np.uint8)
        frame = self._frame_type.from_ndarray(yuv, format="yuv420p")
        if self._timed is None:
            self._timed = pts is not None
            if self._timed:
                self.stream.codec_context.time_base = _TIME_BASE
                self._n = -1  # the first frame may be at pts 0
        if self._timed:  # media time in ms, strictly increasing for the muxer
            self._n = max(self._n + 1, int(round((pts or 0.0) / _TIME_BASE)))
            frame.pts, frame.time_base = self._n, _TIME_BASE
        else:
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
        self.codec, self.size = fourcc, size
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)

    def opened(self) -> bool:
        return bool(self.writer.isOpened())

    def write(self, image: np.ndarray, pts: float | None = None) -> None:
        """A constant rate: `pts` is ignored (OpenCV's writer has no timestamps)."""
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
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
    path: Path,
    fps: float,
    size: tuple[int, int],
    fourcc: str | None = None,
    *,
    muxer: str | None = None,
    preset: str | None = None,
    threads: int | None = None,
) -> VideoWriter | None:
    """A writer for `path`: H.264 via PyAV for MP4-like files (or any name with `muxer`, e.g. a
    `.mp4.part` file renamed when complete) unless `fourcc` asks for an OpenCV codec; OpenCV (mp4v
    for MP4, MJPG for .avi) otherwise. `preset`: libx264's speed/size trade-off (default veryfast);
    `threads`: libx264's threads (None: its own choice, one per core and a half). None when
    nothing could open it."""
    if fourcc is None and (muxer is not None or path.suffix.lower() in H264_CONTAINERS):
        if pyav_available():
            try:
                return PyAVWriter(path, fps, size, muxer, preset, threads)
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
