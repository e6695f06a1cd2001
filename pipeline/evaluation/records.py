"""Reading vigil's JSONL results (`sink.jsonl`) for evaluation, one checked frame record a line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from os import PathLike
from typing import Any


def _checked_records(path: str | PathLike[str]) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(record, detections) of every non-empty line, checked as `read_frame_records` says."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                detections = list(record.get("detections", ()))
                for det in detections:
                    if len([float(v) for v in det["box"]]) != 4:
                        raise ValueError(f"box {det['box']!r} is not [x1, y1, x2, y2]")
                    if det.get("track_id") is not None:
                        int(det["track_id"])
                str(record["source"]), int(record["seq"])
                yield record, detections
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{number}: not a vigil frame record ({exc})") from exc


def read_frame_records(path: str | PathLike[str]) -> Iterator[tuple[str, int, list[dict[str, Any]]]]:
    """(source, seq, detections) of every non-empty line. A line that is not a frame record, or a
    detection without a 4-number box or with a non-integer track_id, is a ValueError naming
    `path:line`."""
    for record, detections in _checked_records(path):
        yield str(record["source"]), int(record["seq"]), detections


def read_image_records(path: str | PathLike[str]) -> Iterator[tuple[str | None, list[dict[str, Any]]]]:
    """(file, detections) of every line: `file` is the image's name for frames read from an
    image folder (None for video frames). Checked as `read_frame_records`."""
    for record, detections in _checked_records(path):
        name = record.get("file")
        yield (None if name is None else str(name)), detections
