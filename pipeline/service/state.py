"""What the service keeps beside the running pipeline: the newest frame of each source and the
latest events. Both are filled by the runner's `on_result` (the supervisor thread), which must
never wait: it only swaps a reference or appends to a bounded deque. Viewers read the newest
frame when they are ready for one, so nothing queues up per client and a stalled browser costs
the pipeline nothing."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.frame import Frame

EVENT_BUFFER = 1000  # events kept for GET /api/events


@dataclass
class _Newest:
    seq: int
    image: np.ndarray  # the annotated picture when a render stage ran, else the image
    wall: float
    jpeg: bytes | None = None  # encoded once, on the first request, shared by every viewer


class FrameStore:
    """The newest frame of each source, and its JPEG encoded on demand (once per frame)."""

    def __init__(self, quality: int = 80) -> None:
        self.quality = quality
        self._newest: dict[str, _Newest] = {}  # swapped whole, so readers need no lock

    def put(self, frame: Frame) -> None:
        """Keep `frame` as its source's newest (O(1), no copy: frames are immutable)."""
        self._newest[frame.source] = _Newest(frame.seq, frame.view, frame.wall)

    def forget(self, source: str) -> None:
        self._newest.pop(source, None)

    def seq(self, source: str) -> int | None:
        """The seq of the newest frame of `source`, None before its first frame."""
        newest = self._newest.get(source)
        return None if newest is None else newest.seq

    def jpeg(self, source: str) -> tuple[int, bytes] | None:
        """(seq, JPEG bytes) of the newest frame of `source`; encodes it if nobody has yet."""
        newest = self._newest.get(source)
        if newest is None:
            return None
        if newest.jpeg is None:
            # Two viewers may encode the same frame at once; rare and harmless, and cheaper
            # than holding a lock across the encode.
            ok, buf = cv2.imencode(".jpg", newest.image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                return None
            newest.jpeg = buf.tobytes()
        return newest.seq, newest.jpeg


class EventBuffer:
    """The latest events of every source, numbered 1, 2, 3, ... so clients ask for what is new."""

    def __init__(self, size: int = EVENT_BUFFER) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, frame: Frame) -> None:
        if not frame.events:
            return
        with self._lock:
            for event in frame.events:
                self._events.append(
                    {
                        "seq": next(self._ids),
                        "time": frame.wall,
                        "source": frame.source,
                        "frame": frame.seq,
                        **event.to_record(),
                    }
                )

    def since(self, seq: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        """Events numbered above `seq`, oldest first, at most `limit` (the newest ones)."""
        with self._lock:
            newer = [e for e in self._events if e["seq"] > seq]
        return newer[-limit:]

    @property
    def last(self) -> int:
        with self._lock:
            return self._events[-1]["seq"] if self._events else 0


class ResultTap:
    """The runner's `on_result`: keeps the newest frame and the events, and feeds observers
    (the metrics histograms). Never blocks."""

    def __init__(self, frames: FrameStore, events: EventBuffer) -> None:
        self.frames, self.events = frames, events
        self.observers: list[Callable[[Frame], None]] = []

    def __call__(self, frame: Frame) -> None:
        self.frames.put(frame)
        self.events.add(frame)
        for observe in self.observers:
            observe(frame)
