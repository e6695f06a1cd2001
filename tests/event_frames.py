"""Hand-made frames carrying events of the event model, for the event sink tests."""

from __future__ import annotations

import numpy as np

from pipeline.frame import Detections, Frame
from stages.event_model import OutEvent


def event(
    event_id: str, pts: float, type_: str = "line_cross", source: str = "cam0", track_id: int = 1
) -> OutEvent:
    return OutEvent(
        id=event_id,
        type=type_,
        stage="events",
        source=source,
        pts=pts,
        wall=1_700_000_000.0 + pts,
        track_id=track_id,
        label="person",
        score=0.9,
        box=(10.0, 20.0, 60.0, 120.0),
        zones=("door",),
        attributes={"emotion": "happy"},
        data={"line": "aisle", "direction": "in"},
    )


def frame(
    seq: int,
    fps: float = 10.0,
    events: tuple[OutEvent, ...] = (),
    size: tuple[int, int] = (160, 120),
    source: str = "cam0",
    people: int = 0,
) -> Frame:
    """Frame `seq` at `seq / fps` s whose image is filled with grey level 4 * seq (mod 256)."""
    w, h = size
    image = np.full((h, w, 3), (4 * seq) % 256, np.uint8)
    dets = Detections.create(
        [[10 + 5 * i, 20, 40 + 5 * i, 90] for i in range(people)],
        label=["person"] * people,
        track_id=list(range(1, people + 1)),
    )
    return Frame(
        source,
        seq,
        seq / fps,
        1_700_000_000.0 + seq / fps,
        image,
        dets,
        events=tuple(e.to_frame_event() for e in events),
        index=seq,
    )
