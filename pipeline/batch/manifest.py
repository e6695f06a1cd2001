"""The marker each file's output folder carries (`batch-file.json`): which config and which
input made it, and whether it is complete. `--resume` trusts a folder only when its marker says
`complete` for the same config hash and input hash and every output it lists is still there
with its size; anything else (`running`, `partial`, `failed`, no marker) is redone."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from models.integrity import sha256_file
from pipeline.config import PipelineConfig
from pipeline.outputs import write_atomic

MARKER = "batch-file.json"

State = Literal["running", "partial", "failed", "complete"]


def config_hash(config: PipelineConfig) -> str:
    """sha256 of what decides a file's results: the stages, links and the source options, not
    the source's uri (each file replaces it) nor `threads` (a resource, not a result)."""
    data = config.model_dump(mode="json", by_alias=True, exclude={"threads"})
    data["sources"] = [{k: v for k, v in s.items() if k != "uri"} for s in data.get("sources", [])]
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Marker:
    """What a file's output folder holds, written atomically at each change of state."""

    state: State
    input: str
    config_sha256: str
    input_sha256: str
    batch_id: str = ""
    attempt: int = 1  # of this file in this batch (a retried task, a redo after a crash)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    status: str | None = None  # the run's own status (completed, stopped, failed, ...)
    exit_code: int | None = None
    outputs: dict[str, int] = field(default_factory=dict)  # file (relative) -> size in bytes

    def write(self, folder: Path) -> None:
        write_atomic(folder / MARKER, json.dumps(asdict(self), indent=2))


def read_marker(folder: Path) -> Marker | None:
    """The folder's marker, or None when there is none or it cannot be read."""
    try:
        data = json.loads((folder / MARKER).read_text())
        return Marker(**data)
    except (OSError, ValueError, TypeError):
        return None


def list_outputs(folder: Path) -> dict[str, int]:
    """Every file in the folder (but the marker) with its size."""
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER and not p.name.startswith(".")
    }


def is_complete(folder: Path, config_sha256: str, input_path: Path) -> bool:
    """True when the folder holds the complete outputs of this config on this input."""
    marker = read_marker(folder)
    if marker is None or marker.state != "complete" or marker.config_sha256 != config_sha256:
        return False
    for name, size in marker.outputs.items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != size:
            return False
    return marker.input_sha256 == sha256_file(input_path)  # last: the one check that reads the file
