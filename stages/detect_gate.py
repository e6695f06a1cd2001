"""When a detector must run on a frame and when the tracker can predict it instead.

Every detect.* kind takes a `gate:` block (`GateOptions`). With it, a detector runs on a frame
when one of these holds, else it passes the frame on with `frame.predicted = True` (a tracker
after it then reports its predicted boxes, marked `"predicted": true` in results.jsonl):

- nothing is known about motion (`frame.motion is None`: no `filter.motion` before it);
- the frame has motion that the last inference does not explain: a motion box lying mostly
  (`covered`) inside a box the detector last found (grown by `margin`) is that object moving in
  place (a person at a table) and waits for its re-check; motion anywhere else (someone
  entering, an object walking out of its box) runs the detector;
- objects are being followed and their re-check is due: the detector's own last inference on
  this source found an object scoring >= `min_score`, and about `recheck_every` frames have passed
  (on the source's beat, below); stationary objects stay alive in the tracker and are re-detected
  at this interval;
- the last inference found nothing although the one before it did: run again on the next
  frame (`confirm_gone` times) before believing the object left without moving;
- `max_interval` frames have passed since the last inference, whatever else.

Re-checks are spread over the sources: each source gets a phase when it is first seen (0, 1, 2,
... in that order, modulo `recheck_every`) and re-checks only on its beat, the frames where
`(seq + phase) % recheck_every == 0`; the re-check due `recheck_every` frames after the last run
moves to the nearest frame on the beat (the earlier one on a tie). Cameras started together, whose
motion-triggered runs fall on the same frames, would otherwise re-check on the same frames too,
all needing the detector at the same moment: a burst of inferences that pushes latency over a
frame interval while the CPU is on average far from busy. A source followed without motion
re-checks exactly every `recheck_every` frames; after a run off its beat (motion), the next
re-check comes `recheck_every - recheck_every // 2` to `recheck_every + (recheck_every - 1) // 2`
frames later (3 to 7 for 5), never more than `2 * recheck_every - 1`. Always waiting for the next
beat instead would stretch some waits to that maximum: on the fixed-camera test video, 8 frames
without a detection were enough for a person walking in to lose their track and come back under
a new id. Motion, `confirm_gone` and `max_interval` do not wait for the beat.

The detector judges "objects are being followed" from its own last results rather than asking
the tracker (which runs after it): no message has to go back up the pipeline, and it keeps
each stage's state its own. The gate keeps this per source, so a gated detector is stateful
(one worker). `DetectGate` is pure bookkeeping: no images, testable on sequence numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from pipeline.frame import Detections, Frame
from pipeline.stage import Options

GATE_DESCRIPTION = (
    "run only when it matters (needs filter.motion before it and a tracker after it): "
    "{recheck_every: 5 frames between re-checks of found objects (on a per-source beat, so sources "
    "re-check on different frames), max_interval: 50 frames at most "
    "between runs, min_score: 0.5 to count as found, confirm_gone: 2 runs after objects vanish, "
    "covered: 0.8 of a motion box inside a found box to wait for the re-check, margin: 0.15 growth "
    "of found boxes}; null: every frame"
)


class GateOptions(Options):
    """Options of a detector's `gate:` block (frames are frames of the source, after `every`)."""

    recheck_every: int = Field(
        5,
        ge=1,
        le=10_000,
        description="re-detect objects found by the last inference every this many frames, on the "
        "source's beat: frames where (seq + phase) % recheck_every == 0, phases 0, 1, 2, ... in the order "
        "sources appear, so sources re-check on different frames; after a run off the beat (motion) the "
        "re-check moves to the nearest beat frame (3 to 7 frames later for 5)",
    )
    max_interval: int = Field(
        50,
        ge=1,
        le=100_000,
        description="run at least once in this many frames, even with no motion and nothing found",
    )
    min_score: float = Field(
        0.5, ge=0, le=1, description="a detection scoring >= this (0..1) counts as an object to re-check"
    )
    confirm_gone: int = Field(
        2,
        ge=0,
        le=100,
        description="after objects vanish without motion, run on this many more frames to confirm",
    )
    covered: float = Field(
        0.8,
        gt=0,
        le=1.01,
        description="motion lying at least this fraction (0..1) inside a box found by the last inference "
        "waits for the re-check (above 1: any motion runs the detector)",
    )
    margin: float = Field(
        0.15, ge=0, le=2, description="grow the found boxes by this fraction of their size on each side"
    )


def unexplained(motion: np.ndarray, objects: np.ndarray, covered: float, margin: float) -> bool:
    """Whether some motion box (M, 4) lies less than `covered` (fraction of its area) inside every
    object box (K, 4) grown by `margin` (fraction of its width/height on each side); xyxy px."""
    if len(motion) == 0:
        return False
    if len(objects) == 0 or covered > 1:
        return True
    wh = objects[:, 2:] - objects[:, :2]
    grown = np.concatenate([objects[:, :2] - margin * wh, objects[:, 2:] + margin * wh], axis=1)
    m = motion[:, None, :]
    g = grown[None, :, :]
    iw = np.clip(np.minimum(m[..., 2], g[..., 2]) - np.maximum(m[..., 0], g[..., 0]), 0, None)
    ih = np.clip(np.minimum(m[..., 3], g[..., 3]) - np.maximum(m[..., 1], g[..., 1]), 0, None)
    area = np.maximum((motion[:, 2] - motion[:, 0]) * (motion[:, 3] - motion[:, 1]), 1e-6)
    inside = (iw * ih).max(axis=1) / area
    return bool((inside < covered).any())


@dataclass
class _SourceState:
    last_run: int = -(10**9)  # seq of the last inference
    seen: bool = False  # the last inference found an object
    objects: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # what it found
    empty_runs: int = 0  # inferences in a row that found nothing after one that found something
    phase: int = 0  # re-checks fall on frames where (seq + phase) % recheck_every == 0


class DetectGate:
    """Per-source decisions of one detector, plus the frames inferred and skipped.

    options None: not gated, every frame is inferred (and counted).
    """

    def __init__(self, options: GateOptions | None) -> None:
        self.options = options
        self._sources: dict[str, _SourceState] = {}
        self._arrivals = 0  # sources seen so far: the next one's phase
        self.inferred = 0
        self.skipped = 0

    def should_run(self, frame: Frame) -> bool:
        """Whether the detector must run on `frame` (counts the decision)."""
        o = self.options
        if o is None:
            self.inferred += 1
            return True
        state = self._state(frame.source)
        since = frame.seq - state.last_run
        # the re-check due recheck_every frames after the last run, moved to the nearest frame on the beat
        on_beat = (frame.seq + state.phase) % o.recheck_every == 0
        recheck = on_beat and since >= o.recheck_every - o.recheck_every // 2
        run = (
            frame.motion is None
            or unexplained(frame.motion, state.objects, o.covered, o.margin)
            or since >= o.max_interval
            or (state.seen and recheck)
            or 0 < state.empty_runs <= o.confirm_gone
        )
        if run:
            self.inferred += 1
            state.last_run = frame.seq
        else:
            self.skipped += 1
        return run

    def ran(self, frame: Frame, found: Detections) -> None:
        """Record what the inference on `frame` found (its kept detections)."""
        if self.options is None:
            return
        state = self._state(frame.source)
        state.objects = found.xyxy[found.score >= self.options.min_score]
        seen = len(state.objects) > 0
        if seen:
            state.empty_runs = 0
        elif state.seen or state.empty_runs:
            state.empty_runs += 1
        state.seen = seen

    def _state(self, source: str) -> _SourceState:
        """The source's bookkeeping; a new source takes the next re-check phase (round-robin)."""
        state = self._sources.get(source)
        if state is None:
            assert self.options is not None
            state = _SourceState(phase=self._arrivals % self.options.recheck_every)
            self._sources[source] = state
            self._arrivals += 1
        return state

    def end_stream(self, source: str) -> None:
        self._sources.pop(source, None)

    def report(self) -> dict[str, int]:
        return {"inferred": self.inferred, "skipped": self.skipped}


def detect_gated(
    gate: DetectGate, frames: Sequence[Frame], find: Callable[[list[Frame]], list[Detections]]
) -> list[Frame]:
    """Run `find` (frames -> their new detections) on the frames the gate lets through and append
    what it found; the others go on unchanged with `predicted = True`. Order is kept."""
    run = [gate.should_run(f) for f in frames]
    todo = [f for f, r in zip(frames, run, strict=True) if r]
    found = iter(find(todo) if todo else [])
    out: list[Frame] = []
    for frame, r in zip(frames, run, strict=True):
        if not r:
            out.append(frame.replace(predicted=True))
            continue
        det = next(found)
        gate.ran(frame, det)
        out.append(frame.with_detections(Detections.concat([frame.detections, det])))
    return out
