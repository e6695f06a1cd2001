"""What `vigil batch` runs on: INPUTS (files, folders, globs) expanded into one item per file,
each with the path its outputs get under the batch's output folder."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError

# Files a folder contributes (a glob or a named file is taken as given).
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".wmv"})
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class BatchInput:
    """One file of the batch: its absolute path and its path relative to the root it was found
    under (a folder given, the fixed part of a glob, or a file's own folder)."""

    path: Path
    relative: Path

    def output_dir(self, root: Path) -> Path:
        """Where this file's outputs go: `root/<relative path>/` (the file name is a folder there)."""
        return root / self.relative


def _glob_root(pattern: str) -> Path:
    """The longest leading part of a glob without wildcards (`clips/2024/*/*.mp4` -> `clips/2024`)."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if any(ch in part for ch in GLOB_CHARS):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _from_folder(folder: Path) -> list[BatchInput]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()  # a stable order from one run to the next
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.suffix.lower() in VIDEO_SUFFIXES:
                found.append(BatchInput(p.resolve(), p.relative_to(folder)))
    return found


def expand_inputs(inputs: list[str]) -> list[BatchInput]:
    """Every file the INPUTS name, in order, each once. A folder contributes its video files
    (recursively); a glob its matches; a file itself. Raises ConfigError for an input that
    matches nothing, or for two files that would share an output folder."""
    items: list[BatchInput] = []
    for text in inputs:
        p = Path(text).expanduser()
        if p.is_dir():
            found = _from_folder(p)
        elif any(ch in text for ch in GLOB_CHARS):
            root = _glob_root(text)
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            found = [BatchInput(m.resolve(), m.relative_to(root)) for m in matches if m.is_file()]
        elif p.is_file():
            found = [BatchInput(p.resolve(), Path(p.name))]
        else:
            raise ConfigError(f"input {text}: no such file or folder")
        if not found:
            raise ConfigError(f"input {text}: no video files there")
        items += found
    seen: dict[Path, Path] = {}
    unique = []
    for item in items:
        other = seen.get(item.relative)
        if other == item.path:
            continue  # named twice (a file and its folder): run it once
        if other is not None:
            raise ConfigError(
                f"inputs {other} and {item.path} would both write to {item.relative}/; "
                "give their common folder instead"
            )
        seen[item.relative] = item.path
        unique.append(item)
    return unique
