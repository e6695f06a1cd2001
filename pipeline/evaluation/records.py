"""Reading vigil's JSONL results (`sink.jsonl`) for evaluation, one checked frame record a line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from os import PathLike
from typing import Any


def read_frame_records(path: str | PathLike[str]) -> Iterator[tuple[str, int, list[dict[str, Any]]]]:
    """(source, seq, detections) of every non-empty line. A line that is not a frame record, or a
    detection without a 4-number box or with a non-integer track_id, is a ValueError naming
    `path:line`."""
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
                yield str(record["source"]), int(record["seq"]), detections
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{number}: not a vigil frame record ({exc})") from exc
