"""Wire format of a link message: a small JSON header, then raw buffers. Never pickle.

A frame travels as [header, image, annotated?, xyxy, score, class_id, track_id, numeric
attributes...]. Buffers are sent zero-copy (`copy=False`); on the receiving side they become
read-only numpy views of the message memory, so frames stay immutable once sent.
Control messages (stream start/end, pool bookkeeping) are a header alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.frame import Detections, Event, Frame, SourceInfo, to_jsonable


@dataclass(frozen=True)
class StreamStart:
    info: SourceInfo


@dataclass(frozen=True)
class StreamEnd:
    source: str
    reason: str = "eos"  # eos | stopped | error


@dataclass(frozen=True)
class Control:
    """Runner bookkeeping between a pool's parent and its workers (ready, failed, stop, none)."""

    type: str
    data: dict[str, Any]


Message = Frame | StreamStart | StreamEnd | Control


@dataclass(frozen=True)
class Envelope:
    """A message with its pool ticket (order key) and its part count within that ticket."""

    message: Message
    ticket: int = -1
    parts: int = 1
    origin: int = -1  # which pool worker incarnation produced it


def _array_meta(arr: np.ndarray) -> list[Any]:
    return [arr.dtype.str, list(arr.shape)]


def encode(msg: Message, ticket: int = -1, parts: int = 1, origin: int = -1) -> list[Any]:
    """Message -> list of buffers for `send_multipart(copy=False)`."""
    head: dict[str, Any] = {"tk": ticket, "tn": parts, "wo": origin}
    buffers: list[Any] = []
    if isinstance(msg, Frame):
        head.update(
            t="f",
            src=msg.source,
            seq=msg.seq,
            pts=msg.pts,
            wall=msg.wall,
            idx=msg.index,
            tm=dict(msg.timings),
            err=list(msg.errors),
            ev=[e.to_record() for e in msg.events],
        )
        images = []
        for img in (msg.image, msg.annotated):
            if img is None:
                images.append(None)
                continue
            img = np.ascontiguousarray(img)
            images.append(_array_meta(img))
            buffers.append(img)
        head["img"] = images
        det = msg.detections
        arrays: list[list[Any]] = []
        objects: dict[str, Any] = {}
        columns = [
            ("xyxy", det.xyxy),
            ("score", det.score),
            ("class_id", det.class_id),
            ("track_id", det.track_id),
        ]
        columns += [(f"a:{k}", v) for k, v in det.attributes.items()]
        for name, arr in columns:
            if arr.dtype == object:
                objects[name] = to_jsonable(list(arr))
            else:
                arr = np.ascontiguousarray(arr)
                arrays.append([name, *_array_meta(arr)])
                buffers.append(arr)
        head["det"] = {
            "lab": [str(x) for x in det.label],
            "arr": arrays,
            "obj": objects,
            "ord": list(det.attributes),
        }
    elif isinstance(msg, StreamStart):
        head.update(t="start", info=asdict(msg.info))
    elif isinstance(msg, StreamEnd):
        head.update(t="end", src=msg.source, reason=msg.reason)
    elif isinstance(msg, Control):
        head.update(t="ctl", type=msg.type, data=to_jsonable(msg.data))
    else:
        raise TypeError(f"cannot send {type(msg).__name__}")
    return [json.dumps(head, separators=(",", ":")).encode(), *buffers]


def _view(buf: Any, meta: list[Any]) -> np.ndarray:
    dtype, shape = meta
    arr = np.frombuffer(memoryview(buf), dtype=np.dtype(dtype)).reshape(shape)
    arr.flags.writeable = False  # the buffer may be the sender's memory (inproc zero-copy)
    return arr


def decode(parts: list[Any]) -> Envelope:
    """Buffers from `recv_multipart(copy=False)` -> Envelope (arrays are read-only views)."""
    head = json.loads(bytes(memoryview(parts[0])))
    ticket, count, origin = head.get("tk", -1), head.get("tn", 1), head.get("wo", -1)
    t = head["t"]
    if t == "start":
        return Envelope(StreamStart(SourceInfo(**head["info"])), ticket, count, origin)
    if t == "end":
        return Envelope(StreamEnd(head["src"], head.get("reason", "eos")), ticket, count, origin)
    if t == "ctl":
        return Envelope(Control(head["type"], head.get("data", {})), ticket, count, origin)
    if t != "f":
        raise ValueError(f"unknown message type {t!r}")
    pos = 1
    images: list[np.ndarray | None] = []
    for meta in head["img"]:
        if meta is None:
            images.append(None)
        else:
            images.append(_view(parts[pos], meta))
            pos += 1
    cols: dict[str, Any] = {}
    for name, dtype, shape in head["det"]["arr"]:
        cols[name] = _view(parts[pos], [dtype, shape])
        pos += 1
    for name, values in head["det"]["obj"].items():
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        cols[name] = arr
    labels = np.empty(len(head["det"]["lab"]), dtype=object)
    labels[:] = head["det"]["lab"]
    det = Detections(
        cols["xyxy"],
        cols["score"],
        cols["class_id"],
        labels,
        cols["track_id"],
        {name: cols[f"a:{name}"] for name in head["det"]["ord"]},  # in the order the stages wrote them
    )
    frame = Frame(
        source=head["src"],
        seq=head["seq"],
        pts=head["pts"],
        wall=head["wall"],
        image=images[0],
        detections=det,
        events=tuple(Event.from_record(e) for e in head["ev"]),
        index=head["idx"],
        annotated=images[1],
        timings=head["tm"],
        errors=tuple(head["err"]),
    )
    return Envelope(frame, ticket, count, origin)
