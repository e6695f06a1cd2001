"""Wire format of a link message: a small JSON header, then raw buffers. Never pickle.

A frame travels as [header, image, annotated?, xyxy, score, class_id, track_id, numeric
attributes...]; its few motion boxes travel in the header. Buffers are sent zero-copy
(`copy=False`); on the receiving side they become read-only numpy views of the message memory,
so frames stay immutable once sent.
Control messages (stream start/end, pool bookkeeping) are a header alone.

Between threads of one process (inproc links) nothing is encoded: the link carries a key and the
receiver takes the message itself (`handoff`: the same frame with read-only array views, checked
as `decode` checks one, at a tenth of the cost; see there what is shared).

A link may be reachable from outside the run (tcp), so `decode` trusts nothing: the header
must be JSON of the expected shape, every buffer must be described and of the described size,
dtypes come from an allow-list (never `object`), and a message must carry the run's token.
Anything else is an `InvalidMessage`, which the receiver drops and counts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, TypedDict

import numpy as np

from pipeline.frame import Detections, Event, Frame, SourceInfo, to_jsonable


@dataclass(frozen=True)
class StreamStart:
    info: SourceInfo


@dataclass(frozen=True)
class StreamEnd:
    source: str
    reason: str = "eos"  # eos | stopped | error


class ControlData(TypedDict, total=False):
    """What a control message carries; which keys depends on its type."""

    wid: int  # ready, failed: the pool worker that sends it
    error: str  # failed: "ExceptionType: message"
    code: int  # failed: the exit code the run should end with
    report: dict[str, Any]  # report: what a pool worker's stage put in its report (JSON-ready)


@dataclass(frozen=True)
class Control:
    """Runner bookkeeping between a pool's parent and its workers (ready, failed, stop, none)."""

    type: str
    data: ControlData


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


class InvalidMessage(ValueError):
    """A received message that is not one of ours: malformed, forged, or from another run."""


# numeric dtypes a link carries (object, void, string and time dtypes never cross a link)
ALLOWED_DTYPES = frozenset(
    np.dtype(t).str for t in ("?", "u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f2", "f4", "f8")
)
MAX_BUFFERS = 4096


def encode(msg: Message, ticket: int = -1, parts: int = 1, origin: int = -1, token: str = "") -> list[Any]:
    """Message -> list of buffers for `send_multipart(copy=False)`."""
    head: dict[str, Any] = {"tk": ticket, "tn": parts, "wo": origin, "rt": token}
    buffers: list[Any] = []
    if isinstance(msg, Frame):
        head.update(_frame_head(msg, buffers))
    elif isinstance(msg, StreamStart):
        head.update(t="start", info=asdict(msg.info))
    elif isinstance(msg, StreamEnd):
        head.update(t="end", src=msg.source, reason=msg.reason)
    elif isinstance(msg, Control):
        head.update(t="ctl", type=msg.type, data=to_jsonable(msg.data))
    else:
        raise TypeError(f"cannot send {type(msg).__name__}")
    return [json.dumps(head, separators=(",", ":")).encode(), *buffers]


def _frame_head(frame: Frame, buffers: list[Any]) -> dict[str, Any]:
    """The header fields of a frame; its image(s) and numeric columns are appended to `buffers`."""
    images: list[list[Any] | None] = []
    for img in (frame.image, frame.annotated):
        if img is None:
            images.append(None)
            continue
        img = np.ascontiguousarray(img)
        images.append(_array_meta(img))
        buffers.append(img)
    return {
        "t": "f",
        "src": frame.source,
        "seq": frame.seq,
        "pts": frame.pts,
        "wall": frame.wall,
        "idx": frame.index,
        "tm": dict(frame.timings),
        "err": list(frame.errors),
        "ev": [e.to_record() for e in frame.events],
        "img": images,
        "det": _detections_head(frame.detections, buffers),
        "file": frame.file,
        "mo": None if frame.motion is None else np.asarray(frame.motion, np.float32).tolist(),
        "pr": frame.predicted,
    }


def _detections_head(det: Detections, buffers: list[Any]) -> dict[str, Any]:
    """Numeric columns go to `buffers` (described in "arr"); object columns travel as JSON ("obj")."""
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
    return {
        "lab": [str(x) for x in det.label],
        "arr": arrays,
        "obj": objects,
        "ord": list(det.attributes),
    }


def handoff(msg: Message) -> Message:
    """What an in-process receiver gets instead of a decoded copy: `msg` with every array a
    read-only view (the sender keeps its own arrays writable, as after a zero-copy send).

    The frame is checked as `decode` checks one (uint8 images, numeric columns of the allowed
    dtypes), so a stage in a thread and one in a process refuse the same frames; values inside
    object columns (e.g. `emotion_probs` dicts) and event data are shared, not copied: frames
    are read, never changed, once sent."""
    if not isinstance(msg, Frame):
        return msg  # frozen dataclasses of strings and JSON data
    _check_images(msg.image, msg.annotated)
    det = msg.detections
    return dataclasses.replace(
        msg,
        image=_frozen(msg.image),
        annotated=None if msg.annotated is None else _frozen(msg.annotated),
        detections=Detections(
            _frozen(det.xyxy, numeric=True),
            _frozen(det.score, numeric=True),
            _frozen(det.class_id, numeric=True),
            _frozen(det.label),
            _frozen(det.track_id, numeric=True),
            {k: _frozen(v) for k, v in det.attributes.items()},
        ),
        timings=dict(msg.timings),
        motion=None if msg.motion is None else _frozen(np.asarray(msg.motion, np.float32).reshape(-1, 4)),
    )


def _check_images(*images: Any) -> None:
    """A frame's pictures are H x W (x C) uint8 arrays (None: absent), whichever way it came."""
    for img in images:
        if img is not None and (
            not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim not in (2, 3)
        ):
            what = (
                f"dtype {img.dtype} and shape {img.shape}"
                if isinstance(img, np.ndarray)
                else type(img).__name__
            )
            raise InvalidMessage(f"image of {what} refused")


def _frozen(values: Any, numeric: bool = False) -> np.ndarray:
    """A read-only view of an array (lists are made arrays first); dtypes as `decode` allows."""
    arr = np.asarray(values)
    if arr.dtype != object and arr.dtype.str not in ALLOWED_DTYPES or numeric and arr.dtype == object:
        raise InvalidMessage(f"array of dtype {arr.dtype} refused")
    view = arr.view()
    view.flags.writeable = False
    return view


def _view(buf: Any, meta: Any) -> np.ndarray:
    if not (isinstance(meta, list) and len(meta) == 2 and isinstance(meta[1], list)):
        raise InvalidMessage("bad array description")
    dtype, shape = meta
    if dtype not in ALLOWED_DTYPES or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise InvalidMessage(f"array of dtype {dtype!r} shape {shape!r} refused")
    view = memoryview(buf)
    expected = math.prod(shape) * np.dtype(dtype).itemsize  # Python ints: no overflow
    if view.nbytes != expected:
        raise InvalidMessage(f"buffer of {view.nbytes} bytes where {dtype}{shape} needs {expected}")
    arr = np.frombuffer(view, dtype=np.dtype(dtype)).reshape(shape)
    arr.flags.writeable = False  # the buffer may be the sender's memory (inproc zero-copy)
    return arr


def _object_column(values: list[Any]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def decode(parts: list[Any], token: str = "") -> Envelope:
    """Buffers from `recv_multipart(copy=False)` -> Envelope (arrays are read-only views).

    Raises InvalidMessage for anything that is not a well-formed message of this run."""
    if not parts or len(parts) > MAX_BUFFERS:
        raise InvalidMessage(f"{len(parts)} message parts")
    try:
        head = json.loads(bytes(memoryview(parts[0])))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessage(f"header is not JSON: {exc}") from None
    if not isinstance(head, dict):
        raise InvalidMessage("header is not a JSON object")
    if head.get("rt", "") != token:
        raise InvalidMessage("message from outside this run (wrong or missing run token)")
    try:
        envelope = _decode_head(head, parts)
    except InvalidMessage:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as exc:
        raise InvalidMessage(f"malformed {head.get('t')!r} message: {type(exc).__name__}: {exc}") from None
    return envelope


def _decode_head(head: dict[str, Any], parts: list[Any]) -> Envelope:
    ticket, count, origin = head.get("tk", -1), head.get("tn", 1), head.get("wo", -1)
    if not all(type(v) is int for v in (ticket, count, origin)):
        raise InvalidMessage("ticket, part count and origin must be integers")
    t = head["t"]
    message: Message
    if t == "f":
        buffers = iter(parts[1:])
        message = _decode_frame(head, buffers)
        if next(buffers, None) is not None:
            raise InvalidMessage("more buffers than the header describes")
    elif len(parts) != 1:
        raise InvalidMessage(f"a {t!r} message carries no buffers")
    elif t == "start":
        message = StreamStart(SourceInfo(**head["info"]))
        _check_types(message.info.id, str, message.info.uri, str)
    elif t == "end":
        message = StreamEnd(head["src"], head.get("reason", "eos"))
        _check_types(message.source, str, message.reason, str)
    elif t == "ctl":
        message = Control(head["type"], head.get("data", {}))
        _check_types(message.type, str, message.data, dict)
    else:
        raise InvalidMessage(f"unknown message type {t!r}")
    return Envelope(message, ticket, count, origin)


def _check_types(*pairs: Any) -> None:
    for value, kind in zip(pairs[::2], pairs[1::2], strict=True):
        if not isinstance(value, kind):
            raise InvalidMessage(f"expected {kind.__name__}, got {type(value).__name__}")


def _decode_frame(head: dict[str, Any], buffers: Iterator[Any]) -> Frame:
    """A frame from its header and its buffers, taken in the order `_frame_head` appended them."""
    image, annotated = (None if meta is None else _view(next(buffers), meta) for meta in head["img"])
    if image is None:
        raise InvalidMessage("frame message without an image")
    _check_images(image, annotated)
    _check_types(head["src"], str, head["seq"], int, head["idx"], int, head["tm"], dict, head["err"], list)
    return Frame(
        source=head["src"],
        seq=head["seq"],
        pts=head["pts"],
        wall=head["wall"],
        image=image,
        detections=_decode_detections(head["det"], buffers),
        events=tuple(Event.from_record(e) for e in head["ev"]),
        index=head["idx"],
        annotated=annotated,
        timings=head["tm"],
        errors=tuple(head["err"]),
        file=head.get("file"),
        motion=_motion_boxes(head.get("mo")),
        predicted=head.get("pr", False) is True,
    )


def _motion_boxes(value: Any) -> np.ndarray | None:
    """`frame.motion` from the header: None, or a list of [x1, y1, x2, y2] (float32 (M, 4))."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidMessage("motion boxes must be a list")
    return np.asarray(value, np.float32).reshape(-1, 4)  # ValueError/TypeError: InvalidMessage


def _decode_detections(det: dict[str, Any], buffers: Iterator[Any]) -> Detections:
    cols = {name: _view(next(buffers), [dtype, shape]) for name, dtype, shape in det["arr"]}
    cols.update({name: _object_column(values) for name, values in det["obj"].items()})
    return Detections(
        cols["xyxy"],
        cols["score"],
        cols["class_id"],
        _object_column(det["lab"]),
        cols["track_id"],
        {name: cols[f"a:{name}"] for name in det["ord"]},  # in the order the stages wrote them
    )
