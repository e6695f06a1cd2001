"""What every source reader is: `Reader` (decoded images with their media time, None at the end),
the `Captured` image it returns, and the `CaptureEnd` that says why a stream ended. The readers
themselves are in pipeline.sources (files, image folders, synthetic) and pipeline.live_reader
(webcams and network streams)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from pipeline.frame import SourceInfo


@dataclass(frozen=True)
class CaptureEnd:
    """Why a source's stream ended: eos | stopped | error (with what went wrong)."""

    reason: str
    error: str | None = None


@dataclass
class Captured:
    image: np.ndarray | None  # None when the frame was skipped without decoding
    pts: float
    index: int
    file: str | None = None  # the image's file name (image folders/globs)


class Reader:
    """A source of decoded images. `read` returns None at the end of the stream."""

    info: SourceInfo
    failure: str | None = None  # set when the stream ended because the source broke (not its end)
    reconnecting: bool = False  # a live source between a drop and its reopening (read by `Runner.status`)
    reconnects: int = 0  # drops it came back from
    start_index: int = 0  # frame number of the first frame read (a file's `start_s`)

    def read(self, decode: bool = True, stop: threading.Event | None = None) -> Captured | None:
        raise NotImplementedError

    def close(self) -> None:
        pass
