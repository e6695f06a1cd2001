"""`debug.fault`: inject delays, exceptions and crashes to test a pipeline's resilience."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import Field

from pipeline.frame import Frame
from pipeline.stage import Options, Stage, register


class FaultOptions(Options):
    """Options of `debug.fault` (frame seqs count per source from 0)."""

    delay_ms: float = Field(0.0, ge=0, description="sleep this long on every frame, milliseconds")
    raise_on: list[int] = Field(default_factory=list, description="raise an exception on these frame seqs")
    crash_on: list[int] = Field(
        default_factory=list, description="kill the worker process on these frame seqs"
    )
    crash_once: str | None = Field(
        None, description="marker file: crash only if it does not exist yet (then create it)"
    )
    drop_on: list[int] = Field(default_factory=list, description="drop (filter out) these frame seqs")


@register("debug.fault")
class FaultStage(Stage[FaultOptions]):
    """Pass frames through, sleeping, raising, dropping or crashing on chosen frames (for tests)."""

    def process(self, frame: Frame) -> Frame | None:
        opts = self.options
        if opts.delay_ms:
            time.sleep(opts.delay_ms / 1000)
        if frame.seq in opts.crash_on:
            marker = Path(opts.crash_once) if opts.crash_once else None
            if marker is None or not marker.exists():
                if marker is not None:
                    marker.write_text(str(frame.seq))
                os._exit(3)  # what a segfault in a native library looks like to the runner
        if frame.seq in opts.raise_on:
            raise RuntimeError(f"injected fault on frame {frame.seq}")
        if frame.seq in opts.drop_on:
            return None
        return frame
