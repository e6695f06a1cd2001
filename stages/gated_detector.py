"""The shell every detector stage shares: its detector runs only when its gate says so.

A subclass implements `_find(frames) -> list[Detections]` (its detector on those frames); this
class gives it the `gate:` option (`stages.detect_gate`), the skipped frames marked `predicted`, the
`inferred`/`skipped` counts in the report, and `workers: 1` while gated (the gate follows each
source frame by frame).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import Field

from pipeline.frame import Detections, Frame
from pipeline.stage import Options, Stage, StageContext
from stages.detect_gate import GATE_DESCRIPTION, DetectGate, GateOptions, detect_gated


class GatedOptions(Options):
    """Options every detector has."""

    gate: GateOptions | None = Field(None, description=GATE_DESCRIPTION)


GatedT = TypeVar("GatedT", bound=GatedOptions)


class GatedDetectorStage(Stage[GatedT]):
    """A detector stage; subclasses provide `_find`."""

    def __init__(self, options: GatedT, context: StageContext) -> None:
        super().__init__(options, context)
        self.gate = DetectGate(options.gate)

    @classmethod
    def is_stateful(cls, options: GatedT) -> bool:
        return options.gate is not None  # the gate follows each source frame by frame

    def _find(self, frames: list[Frame]) -> list[Detections]:
        """The detector's results for `frames` (one per frame)."""
        raise NotImplementedError

    def _gated(self, frames: list[Frame]) -> list[Frame]:
        out = detect_gated(self.gate, frames, self._find)
        self.context.report.update(self.gate.report())
        return out

    def process(self, frame: Frame) -> Frame:
        return self._gated([frame])[0]

    def process_batch(self, frames: list[Frame]) -> list[Frame | None]:
        return list(self._gated(frames))

    def end_stream(self, source: str) -> list[Frame]:
        self.gate.end_stream(source)
        return []
