"""Capture: turn a source (file, image folder/glob, webcam, RTSP/HTTP stream, synthetic) into frames.

A reader yields decoded images with their media time; `capture_loop` adds `every: N`, resize,
real-time pacing and the stream start/end markers, and hands frames to the first link.
Cameras and streams (pipeline.live_reader) reconnect with growing delays and log the gap; a file
with unreadable frames skips them and says so; a source that cannot be opened at all is a
`SourceError`. The reader interface is in pipeline.reader.
"""

from __future__ import annotations

import glob
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from pipeline.config import SourceConfig, uri_kind_by_name
from pipeline.errors import SourceError
from pipeline.frame import Frame, SourceInfo
from pipeline.image_limits import FrameSizeGuard, image_file_refusal
from pipeline.live_reader import LiveReader
from pipeline.reader import Captured, CaptureEnd, Reader
from pipeline.redact import redact_uri
from pipeline.transport import Stopped
from pipeline.wire import Message, StreamEnd, StreamStart

log = logging.getLogger("vigil.capture")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
MAX_BAD_FRAMES = 25  # consecutive unreadable frames before a file counts as ended


def classify_uri(uri: str | int) -> str:
    """file | images | camera | stream | synthetic."""
    kind = uri_kind_by_name(uri)
    if kind is not None:
        return kind
    uri = str(uri)
    if any(ch in uri for ch in "*?[") or Path(uri).is_dir() or Path(uri).suffix.lower() in IMAGE_SUFFIXES:
        return "images"
    return "file"


def open_source(cfg: SourceConfig) -> Reader:
    kind = classify_uri(cfg.uri)
    if cfg.start_s and kind != "file":  # the config refuses it for cameras and streams; folders land here
        log.warning("source %s: start_s applies to video files only; ignored for %s", cfg.id, kind)
    if kind == "camera":
        return LiveReader(cfg, int(cfg.uri), "camera")
    if kind == "stream":
        return LiveReader(cfg, str(cfg.uri), "stream")
    if kind == "synthetic":
        return SyntheticReader(cfg)
    if kind == "images":
        return ImageReader(cfg)
    return FileReader(cfg)


class FileReader(Reader):
    """A video file, decoded to the end; unreadable frames in the middle are skipped and logged.

    `start_s` seeks to the frame nearest that time before the first read; frame numbers (`index`)
    and media times (`pts`) stay positions in the file. `loop` restarts from the beginning of the
    file, not from `start_s` (a looped camera copy shows the whole scene), and media time goes on
    across loops so that `realtime` keeps pacing.
    """

    def __init__(self, cfg: SourceConfig) -> None:
        path = Path(str(cfg.uri))
        if not path.is_file():
            raise SourceError(f"source {cfg.id!r}: no such file: {redact_uri(str(path))}")
        self.cfg, self.path = cfg, path
        self.cap, self._threads = open_video_file(path, cfg.decode_threads)
        if not self.cap.isOpened():
            raise SourceError(
                f"source {cfg.id!r}: cannot open {path} as a video (corrupt, truncated or unsupported codec?)"
            )
        fps = self.cap.get(cv2.CAP_PROP_FPS) or 0.0
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.fps = fps if 0 < fps < 1000 else 25.0
        self.start_index = self._seek(cfg.start_s, count)
        ok, first = self.cap.read()
        if not ok or first is None:
            at = f" from start_s {cfg.start_s:g} s on" if self.start_index else ""
            raise SourceError(f"source {cfg.id!r}: {redact_uri(str(path))} has no decodable frames{at}")
        self._pending: np.ndarray | None = first
        self.index = self.start_index
        self._base_pts = 0.0
        h, w = first.shape[:2]
        self.info = SourceInfo(cfg.id, str(path), "file", self.fps, w, h, count or None, live=cfg.realtime)

    def _seek(self, start_s: float, count: int) -> int:
        """Go to the frame at `start_s` seconds (the nearest); its number."""
        index = round(start_s * self.fps)
        if index == 0:
            return 0
        if count and index >= count:
            raise SourceError(
                f"source {self.cfg.id!r}: start_s {start_s:g} s is past the end of "
                f"{redact_uri(str(self.path))} ({count / self.fps:.1f} s)"
            )
        # FFmpeg seeks to the key frame before and decodes up to the frame asked for: exact
        if not self.cap.set(cv2.CAP_PROP_POS_FRAMES, index):
            for _ in range(index):  # a backend that cannot seek: decode up to it
                if not self.cap.grab():
                    break
        return index

    def read(self, decode: bool = True, stop: threading.Event | None = None) -> Captured | None:
        if self._pending is not None:
            first, self._pending = self._pending, None
            return self._emit(first)
        bad = 0
        while bad < MAX_BAD_FRAMES:
            if self.cap.grab():
                image: np.ndarray | None = self.cap.retrieve()[1] if decode else None
                if not decode or image is not None:
                    if bad:
                        log.warning(
                            "source %s: skipped %d unreadable frame(s) after frame %d",
                            self.cfg.id,
                            bad,
                            self.index,
                        )
                    return self._emit(image)
            bad += 1
        if self.cfg.loop and self.index > 0:  # from the beginning, not from start_s
            self.cap.release()
            self.cap, _ = open_video_file(self.path, self._threads)
            self._base_pts += self.index / self.fps
            self.index = 0
            return self.read(decode, stop)
        total = self.info.frames
        if total and self.index < total - 3:  # containers often over-announce by a frame or two
            log.warning(
                "source %s: %s ended after %d of %d announced frames (truncated?)",
                self.cfg.id,
                self.path,
                self.index,
                total,
            )
        return None

    def _emit(self, image: np.ndarray | None) -> Captured:
        self.index += 1
        return Captured(image, self._base_pts + (self.index - 1) / self.fps, self.index - 1)

    def close(self) -> None:
        self.cap.release()


SINGLE_THREAD_PIXELS = 1920 * 1088  # up to this size one core decodes faster than any detector here


def open_video_file(path: Path, threads: int | None) -> tuple[cv2.VideoCapture, int]:
    """A capture of a video file with `threads` FFmpeg decoding threads (0: FFmpeg's choice;
    None: 1 up to `SINGLE_THREAD_PIXELS`, else FFmpeg's choice), and the count it settled on (to
    reopen with, e.g. when looping). Frame threading buys wall time with CPU, which the stages
    need more; a backend that refuses the parameter opens as usual. The usual file (up to 1080p)
    is opened once: on one thread, reopened only when it turns out larger."""
    cap, used = _open_with_threads(path, 1 if threads is None else threads)
    if threads is None and used == 1:
        pixels = cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if pixels > SINGLE_THREAD_PIXELS:
            cap.release()
            return cv2.VideoCapture(str(path)), 0
    return cap, used


def _open_with_threads(path: Path, threads: int) -> tuple[cv2.VideoCapture, int]:
    if threads == 0:
        return cv2.VideoCapture(str(path)), 0
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
    return (cap, threads) if cap.isOpened() else (cv2.VideoCapture(str(path)), 0)


class ImageReader(Reader):
    """A folder of images or a glob, in name order; unreadable images are skipped and logged."""

    def __init__(self, cfg: SourceConfig) -> None:
        uri = str(cfg.uri)
        if Path(uri).is_dir():
            files = sorted(p for p in Path(uri).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files = sorted(Path(p) for p in glob.glob(uri) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(
                f"source {cfg.id!r}: no images found at {uri} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        self.cfg, self.files, self.pos = cfg, files, 0
        first = None
        for f in files:
            first = None if image_file_refusal(f, cfg.max_pixels) else cv2.imread(str(f))  # size hook
            if first is not None:
                break
        if first is None:
            raise SourceError(
                f"source {cfg.id!r}: none of the {len(files)} images at {redact_uri(str(uri))} could be read"
            )
        h, w = first.shape[:2]
        self.fps = 25.0
        self.info = SourceInfo(cfg.id, uri, "images", self.fps, w, h, len(files), live=cfg.realtime)

    def read(self, decode: bool = True, stop: threading.Event | None = None) -> Captured | None:
        while self.pos < len(self.files):
            path, i = self.files[self.pos], self.pos
            self.pos += 1
            # size hook (pipeline/image_limits.py): never hand an oversized or unknown file to a decoder
            if decode and (refusal := image_file_refusal(path, self.cfg.max_pixels)):
                log.warning("source %s: skipped unreadable image %s: %s", self.cfg.id, path, refusal)
                continue
            image = cv2.imread(str(path)) if decode else None
            if decode and image is None:
                log.warning("source %s: skipped unreadable image %s", self.cfg.id, path)
                continue
            return Captured(image, i / self.fps, i, path.name)
        if self.cfg.loop:
            self.pos = 0
            return self.read(decode, stop)
        return None


class SyntheticReader(Reader):
    """`synthetic://640x480?frames=100&fps=25`: generated frames (benchmarks, tests, demos)."""

    def __init__(self, cfg: SourceConfig) -> None:
        url = urlparse(str(cfg.uri))
        try:
            w, h = (int(x) for x in (url.netloc or "640x480").lower().split("x"))
        except ValueError:
            raise SourceError(
                f"source {cfg.id!r}: synthetic size must look like synthetic://640x480, got {cfg.uri}"
            ) from None
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.frames = int(q.get("frames", 100))
        self.fps = float(q.get("fps", 25))
        rng = np.random.default_rng(0)
        self.background = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        self.cfg, self.index, self._loops = cfg, 0, 0
        self.info = SourceInfo(
            cfg.id, str(cfg.uri), "synthetic", self.fps, w, h, self.frames, live=cfg.realtime
        )

    def read(self, decode: bool = True, stop: threading.Event | None = None) -> Captured | None:
        if self.index >= self.frames:
            if not self.cfg.loop:
                return None
            self.index = 0
            self._loops += 1  # media time goes on across loops, so `realtime` keeps pacing
        i = self.index
        self.index += 1
        image = None
        if decode:
            image = self.background.copy()
            h, w = image.shape[:2]
            x = int((i * 7) % max(1, w - 60))
            cv2.rectangle(image, (x, h // 3), (x + 60, h // 3 + 60), (255, 255, 255), -1)
            cv2.putText(image, str(i), (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 3)
        return Captured(image, (self._loops * self.frames + i) / self.fps, i)


def capture_loop(
    reader: Reader,
    cfg: SourceConfig,
    send: Callable[[Message], bool],
    stop: threading.Event,
    sleep: Callable[[float], bool] | None = None,
) -> CaptureEnd:
    """Read until the end or `stop`, sending StreamStart, frames, StreamEnd. Says why it ended."""
    sleep = sleep or stop.wait
    send(StreamStart(reader.info))
    reason, seq, n, t0 = "eos", 0, 0, time.monotonic()
    pts0: float | None = None  # media time of the first frame: pacing counts from it (a file's start_s)
    error: str | None = None
    size_guard = FrameSizeGuard(cfg.id, cfg.max_pixels)  # size hook: decoded frames over max_pixels
    try:
        while not stop.is_set():
            keep = n % cfg.every == 0
            n += 1
            captured = reader.read(decode=keep, stop=stop)  # skipped frames are grabbed, not decoded
            if captured is None:
                break
            if not keep:
                continue
            image = captured.image
            assert image is not None
            if not size_guard.allows(image):  # size hook (logged, counted)
                continue
            if cfg.resize is not None and (image.shape[1], image.shape[0]) != tuple(cfg.resize):
                image = cv2.resize(image, tuple(cfg.resize), interpolation=cv2.INTER_AREA)
            pts0 = captured.pts if pts0 is None else pts0
            if cfg.realtime and reader.info.kind in ("file", "images", "synthetic"):
                ahead = captured.pts - pts0 - (time.monotonic() - t0)
                if ahead > 0 and sleep(ahead):
                    break
            image.setflags(write=False)  # immutable from here on
            frame = Frame(
                cfg.id, seq, captured.pts, time.time(), image, index=captured.index, file=captured.file
            )
            send(frame)
            seq += 1
            if cfg.max_frames is not None and seq >= cfg.max_frames:
                break
        if stop.is_set():
            reason = "stopped"
        elif reader.failure:
            reason, error = "error", reader.failure
    except Stopped:  # the run is stopping now: not a capture failure
        raise
    except Exception as exc:  # a reader failure ends this source, not the run
        log.error("source %s: capture failed at frame %d: %s", cfg.id, seq, exc)
        reason, error = "error", f"capture failed at frame {seq}: {type(exc).__name__}: {exc}"
    finally:
        reader.close()
    send(StreamEnd(cfg.id, reason))
    return CaptureEnd(reason, error)
