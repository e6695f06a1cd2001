"""Class-name lists: one name per line, index = class id (plus an optional offset)."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path


def load_labels(path: str | PathLike[str]) -> list[str]:
    """Read a label file, one name per line, keeping every line so indices stay aligned.

    Works for the COCO-80 list (`yolo/coco80_labels.txt`, index = class id) and the TF labelmap
    txt (`ssd/ssd_mobilenet_v1_coco_labelmap.txt`: line 0 is the background "???", unused ids are
    "???"). Surrounding whitespace is stripped; blank lines at the end of the file are dropped.
    """
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def label_for(labels: Sequence[str], class_id: int, offset: int = 0) -> str:
    """Name of `class_id`, i.e. `labels[class_id + offset]`; `str(class_id)` when out of range.

    Use offset=1 with the TF labelmap for a 0-based class id (TFLite SSD: label = lines[id + 1]);
    offset=0 for 1-based TF OD API ids with the same file, and for COCO-80 with YOLO.
    """
    index = int(class_id) + offset
    return labels[index] if 0 <= index < len(labels) else str(class_id)
