"""Webcams and network streams (RTSP, HTTP): opened with timeouts, reconnected with growing
delays after a drop, the gap logged, and given up after `reconnect.max_attempts` if set."""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np

from pipeline.config import SourceConfig
from pipeline.errors import SourceError
from pipeline.frame import SourceInfo
from pipeline.reader import Captured, Reader
from pipeline.redact import redact_uri

log = logging.getLogger("vigil.capture")


class LiveReader(Reader):
    """A webcam or network stream; reconnects with growing delays after a drop and logs the gap."""

    def __init__(self, cfg: SourceConfig, target: str | int, kind: str) -> None:
        self.cfg, self.target, self.kind = cfg, target, kind
        self.cap = self._open()
        if self.cap is None:
            what = f"webcam {target}" if kind == "camera" else f"stream {redact_uri(str(target))}"
            raise SourceError(
                f"source {cfg.id!r}: cannot open {what} (check the address/index and that it is reachable)"
            )
        ok, first = self.cap.read()
        if not ok:
            raise SourceError(
                f"source {cfg.id!r}: {kind} opened but sent no frame within {cfg.read_timeout_s:.0f}s"
            )
        self._pending: np.ndarray | None = first
        fps = self.cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.t0 = time.monotonic()
        self.index = 0
        h, w = first.shape[:2]
        self.info = SourceInfo(
            cfg.id, redact_uri(str(target)), kind, fps if 0 < fps < 1000 else 25.0, w, h, None, live=True
        )

    def _open(self) -> cv2.VideoCapture | None:
        if self.kind == "camera":
            cap = cv2.VideoCapture(int(self.target))
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(self.cfg.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(self.cfg.read_timeout_s * 1000),
            ]
            if self.cfg.decode_threads:
                params += [cv2.CAP_PROP_N_THREADS, self.cfg.decode_threads]
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, params)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def read(self, decode: bool = True, stop: threading.Event | None = None) -> Captured | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return self._emit(image)
        while True:
            if self.cap is not None:
                ok, image = self.cap.read()
                if ok and image is not None:
                    return self._emit(image)
                self.cap.release()
                self.cap = None
            if not self._reconnect(stop):
                return None

    def _reconnect(self, stop: threading.Event | None) -> bool:
        lost_at, delay, attempts = time.monotonic(), self.cfg.reconnect.initial_delay_s, 0
        log.warning("source %s: %s dropped; reconnecting", self.cfg.id, self.kind)
        self.reconnecting = True
        try:
            return self._reopen(stop, lost_at, delay, attempts)
        finally:
            self.reconnecting = False

    def _reopen(self, stop: threading.Event | None, lost_at: float, delay: float, attempts: int) -> bool:
        while True:
            if stop is not None and stop.wait(delay):
                return False
            if stop is None:
                time.sleep(delay)
            attempts += 1
            self.cap = self._open()
            if self.cap is not None:
                self.reconnects += 1
                log.warning(
                    "source %s: reconnected after %.1fs gap (%d attempt(s))",
                    self.cfg.id,
                    time.monotonic() - lost_at,
                    attempts,
                )
                return True
            limit = self.cfg.reconnect.max_attempts
            if limit is not None and attempts >= limit:
                log.error("source %s: giving up after %d reconnect attempts", self.cfg.id, attempts)
                self.failure = f"lost; gave up after {attempts} reconnect attempts"
                return False
            delay = min(delay * 2, self.cfg.reconnect.max_delay_s)

    def _emit(self, image: np.ndarray) -> Captured:
        self.index += 1
        return Captured(image, time.monotonic() - self.t0, self.index - 1)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
