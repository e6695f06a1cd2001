"""`render`: draw detections, labels, attributes, track ids and trails, fps and events.

The result goes to `frame.annotated` (a new array copied from `frame.view`); `frame.image` is
never touched, so detectors and classifiers placed after a render still see the clean picture.
Colours are stable: a fixed palette indexed by a CRC32 of the class label or the track id.
"""

from __future__ import annotations

import math
import time
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from pipeline.frame import NO_TRACK, Event, Frame, SourceInfo
from pipeline.stage import Options, Stage, StageContext, register

BGR = tuple[int, int, int]

# 20 well-separated colours (BGR), bright enough to read on video.
PALETTE: tuple[BGR, ...] = (
    (56, 56, 255),
    (151, 157, 255),
    (31, 112, 255),
    (29, 178, 255),
    (49, 210, 207),
    (10, 249, 72),
    (23, 204, 146),
    (134, 219, 61),
    (52, 147, 26),
    (187, 212, 0),
    (168, 153, 44),
    (255, 194, 0),
    (147, 69, 52),
    (255, 115, 100),
    (236, 24, 0),
    (255, 56, 132),
    (133, 0, 82),
    (255, 56, 203),
    (200, 149, 255),
    (199, 55, 255),
)
FONT = cv2.FONT_HERSHEY_SIMPLEX
SCORE_SUFFIXES = ("_score", "_conf", "_prob")


def colour_for(key: object) -> BGR:
    """A palette colour chosen by a deterministic hash of `key` (same in every run and process)."""
    return PALETTE[zlib.crc32(str(key).encode()) % len(PALETTE)]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _top(value: Any) -> tuple[Any, float | None]:
    """A value and its score; a {class: probability} dict gives its most likely class."""
    if isinstance(value, Mapping) and value:
        name = max(value, key=lambda k: value[k])
        return name, float(value[name])
    return value, None


def _number(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.2f}"
    return str(value)


def format_attributes(attributes: Mapping[str, Any], show_scores: bool = True) -> list[str]:
    """Short text segments for one detection's attributes.

    emotion -> "happy 0.88"; gender + age -> "F 31y"; anything else -> "k=v". A column named
    `<name>_score` (or `_conf`, `_prob`) is the score of `<name>`; dict values are class
    probabilities and show their top class. `<name>_probs` beside a shown `<name>` (the class
    distribution behind the label) and point arrays (landmarks) are not text.
    """
    values = {
        k: v
        for k, v in attributes.items()
        if not _is_missing(v) and not isinstance(v, (np.ndarray, list, tuple))
    }
    scores: dict[str, float] = {}
    for name in list(values):
        if name.endswith("_probs") and name[: -len("_probs")] in values:
            del values[name]
            continue
        for suffix in SCORE_SUFFIXES:
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in values:
                scores[base] = float(values.pop(name))
    segments: list[str] = []
    if "emotion" in values:
        emotion, score = _top(values.pop("emotion"))
        score = scores.get("emotion", score)
        segments.append(f"{emotion} {score:.2f}" if show_scores and score is not None else str(emotion))
    person = []
    if "gender" in values:
        gender, _ = _top(values.pop("gender"))
        text = str(gender).strip().lower()
        person.append("F" if text[:1] in ("f", "w") else "M" if text[:1] == "m" else str(gender))
    if "age" in values:
        age, _ = _top(values.pop("age"))
        person.append(f"{round(float(age))}y" if isinstance(age, (int, float, np.number)) else str(age))
    if person:
        segments.append(" ".join(person))
    for name, value in values.items():
        value, score = _top(value)
        score = scores.get(name, score)
        suffix = f" {score:.2f}" if show_scores and score is not None else ""
        segments.append(f"{name}={_number(value)}{suffix}")
    return segments


def format_label(
    label: str,
    score: float | None,
    attributes: Mapping[str, Any] | None = None,
    track_id: int | None = None,
    show_scores: bool = True,
    show_attributes: bool = True,
) -> str:
    """The text over one box, e.g. `#7 face 0.93 | happy 0.88 | F 31y`."""
    head = " ".join(
        part
        for part in (
            f"#{track_id}" if track_id is not None else "",
            label,
            f"{score:.2f}" if show_scores and score is not None else "",
        )
        if part
    )
    segments = [head] if head else []
    if show_attributes and attributes:
        segments += format_attributes(attributes, show_scores)
    return " | ".join(segments)


def _points(value: Any, shape: Sequence[int]) -> np.ndarray | None:
    """Event geometry as int pixel points; all-in-[0, 1] coordinates are taken as relative to the frame."""
    try:
        pts = np.asarray(value, np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        return None
    if len(pts) < 2:
        return None
    if pts.size and pts.min() >= 0 and pts.max() <= 1:
        pts = pts * [shape[1], shape[0]]
    return np.round(pts).astype(np.int32)


class RenderOptions(Options):
    """Options of `render`. Sizes are in pixels of the frame."""

    thickness: int = Field(2, ge=1, le=20, description="box and line thickness in px")
    font_scale: float = Field(
        0.5, gt=0, le=5, description="label text size (OpenCV font scale; 0.5 is ~10 px tall)"
    )
    show_scores: bool = Field(True, description="print detection and attribute scores")
    show_attributes: bool = Field(True, description="print attributes (emotion, gender, age, ...)")
    show_track_ids: bool = Field(True, description="print #track_id before the label")
    show_fps: bool | None = Field(
        None,
        description="print per-source frames per second (wall clock at this stage); "
        "null: only on live sources (cameras, streams), so renders of a recorded file repeat exactly",
    )
    show_events: bool = Field(True, description="draw event geometry (data.line, data.zone) and data.counts")
    trail_length: int = Field(
        30,
        ge=0,
        le=1000,
        description="centres kept per track for its trail, in frames (0 = no trails; at most 1000)",
    )
    colour_by: Literal["class", "track"] = Field(
        "track",
        description="colour boxes by class label, or by track id (untracked boxes fall back to class)",
    )


@register("render")
class Render(Stage[RenderOptions]):
    """Draw boxes, labels, attributes, track trails, fps and analytics events into `frame.annotated`.

    Stateful: keeps per-source fps, track trails and the latest event geometry.
    """

    stateful = True

    def __init__(self, options: RenderOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self._trails: dict[tuple[str, int], deque[tuple[int, int]]] = {}
        self._last_seen: dict[tuple[str, int], int] = {}
        self._clock: dict[str, tuple[float, float]] = {}  # source -> (last arrival, smoothed fps)
        self._live: dict[str, bool] = {}  # source -> live, from start_stream
        self._overlays: dict[
            tuple[str, str, str], dict[str, Any]
        ] = {}  # (source, stage, name) -> line/zone points
        self._counts: dict[tuple[str, str], dict[str, Any]] = {}  # (source, stage) -> latest counts

    def start_stream(self, info: SourceInfo) -> None:
        self._live[info.id] = info.live

    def shows_fps(self, source: str) -> bool:
        """Whether frames of `source` get the fps tag: `show_fps` when set, else only live sources
        (wall-clock fps on a recorded file would make each run's video different)."""
        if self.options.show_fps is not None:
            return self.options.show_fps
        if source in self._live:
            return self._live[source]
        info = self.context.sources.get(source)
        return info is not None and info.live

    def colour(self, label: str, class_id: int, track_id: int) -> BGR:
        """The colour of one detection (stable per class, or per track id)."""
        if self.options.colour_by == "track" and track_id != NO_TRACK:
            return colour_for(f"track:{track_id}")
        return colour_for(label or class_id)

    def process(self, frame: Frame) -> Frame:
        canvas: np.ndarray = np.array(frame.view, dtype=np.uint8, copy=True)
        if canvas.ndim == 2:
            canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
        if self.options.show_events:
            self._draw_events(canvas, frame.source, frame.events)
        self._draw_detections(canvas, frame)
        if self.shows_fps(frame.source):
            self._draw_fps(canvas, frame.source)
        return frame.replace(annotated=canvas)

    def _draw_detections(self, canvas: np.ndarray, frame: Frame) -> None:
        o, det = self.options, frame.detections
        names = list(det.attributes)
        for i in range(len(det)):
            x1, y1, x2, y2 = (int(round(float(v))) for v in det.xyxy[i])
            tid = int(det.track_id[i])
            colour = self.colour(str(det.label[i]), int(det.class_id[i]), tid)
            if tid != NO_TRACK and o.trail_length:
                self._draw_trail(
                    canvas, (frame.source, tid), ((x1 + x2) // 2, (y1 + y2) // 2), frame.seq, colour
                )
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, o.thickness, cv2.LINE_AA)
            text = format_label(
                str(det.label[i]),
                float(det.score[i]),
                {n: det.attributes[n][i] for n in names},
                tid if o.show_track_ids and tid != NO_TRACK else None,
                o.show_scores,
                o.show_attributes,
            )
            if text:
                self._draw_tag(canvas, text, (x1, y1), colour)
        self._forget_old_tracks(frame.source, frame.seq)

    def _draw_tag(self, canvas: np.ndarray, text: str, corner: tuple[int, int], colour: BGR) -> None:
        """Label text on a filled box just above `corner` (inside the box when at the top edge)."""
        scale, thick = self.options.font_scale, max(1, self.options.thickness // 2)
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
        x, y = max(0, min(corner[0], canvas.shape[1] - tw - 2)), corner[1]  # keep the text inside the frame
        top = y - th - base - 2 if y - th - base - 2 >= 0 else y
        cv2.rectangle(canvas, (x, top), (x + tw + 2, top + th + base + 2), colour, cv2.FILLED)
        ink = (
            (0, 0, 0) if 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2] > 140 else (255, 255, 255)
        )
        cv2.putText(canvas, text, (x + 1, top + th + 1), FONT, scale, ink, thick, cv2.LINE_AA)

    def _draw_trail(
        self, canvas: np.ndarray, key: tuple[str, int], centre: tuple[int, int], seq: int, colour: BGR
    ) -> None:
        trail = self._trails.setdefault(key, deque(maxlen=self.options.trail_length))
        trail.append(centre)
        self._last_seen[key] = seq
        if len(trail) > 1:
            cv2.polylines(
                canvas,
                [np.array(trail, np.int32)],
                False,
                colour,
                max(1, self.options.thickness // 2),
                cv2.LINE_AA,
            )

    def _forget_old_tracks(self, source: str, seq: int) -> None:
        # A track unseen for a whole trail length is gone; keeps memory bounded on long runs.
        stale = [
            k for k, s in self._last_seen.items() if k[0] == source and seq - s > self.options.trail_length
        ]
        for key in stale:
            del self._trails[key], self._last_seen[key]

    def _draw_fps(self, canvas: np.ndarray, source: str) -> None:
        now = time.monotonic()
        last, fps = self._clock.get(source, (now, 0.0))
        if now > last:
            fps = 1.0 / (now - last) if fps == 0 else 0.9 * fps + 0.1 / (now - last)
        self._clock[source] = (now, fps)
        if fps > 0:
            self._draw_tag(canvas, f"{source} {fps:.1f} fps", (0, 0), (40, 40, 40))

    def _draw_events(self, canvas: np.ndarray, source: str, events: Sequence[Event]) -> None:
        # Analytics may send geometry only with some events: remember the latest geometry per
        # (stage, line/zone name) — one zone stage may watch several zones — and counts per stage.
        for event in events:
            stage = event.stage or event.type
            geometry = {k: event.data[k] for k in ("line", "zone") if event.data.get(k) is not None}
            if geometry:
                self._overlays.setdefault((source, stage, str(event.data.get("name", ""))), {}).update(
                    geometry
                )
            if isinstance(event.data.get("counts"), Mapping):
                self._counts[(source, stage)] = dict(event.data["counts"])
        for (src, stage, name), overlay in self._overlays.items():
            if src != source:
                continue
            colour = colour_for(f"event:{stage}:{name}")
            for key in ("zone", "line"):
                pts = _points(overlay.get(key), canvas.shape)
                if pts is not None:
                    cv2.polylines(canvas, [pts], key == "zone", colour, self.options.thickness, cv2.LINE_AA)
        lines = [
            f"{stage}: " + " ".join(f"{k}={_number(v)}" for k, v in counts.items())
            for (src, stage), counts in self._counts.items()
            if src == source and counts
        ]
        y = canvas.shape[0] - 4
        for text in reversed(lines):
            self._draw_tag(canvas, text, (0, y), (40, 40, 40))
            y -= int(30 * self.options.font_scale) + 6

    def end_stream(self, source: str) -> list[Frame]:
        stores: tuple[dict[Any, Any], ...] = (self._trails, self._last_seen, self._overlays, self._counts)
        for store in stores:  # every key starts with the source id
            for key in [k for k in store if k[0] == source]:
                del store[key]
        self._clock.pop(source, None)
        self._live.pop(source, None)
        return []
