"""Bounds and building blocks shared by the pipeline file's models (pipeline.config).

Every number a config turns into threads, processes, buffers or memory has an upper bound here,
so a typo cannot start a million threads; `ConfigPathError` lets a validator name the YAML path
of a problem it finds across fields.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipeline.yaml_input import Path_

# Upper bounds on what becomes threads, processes, buffers or memory (a typo such as
# `threads: 1000000` must not start thousands of threads). Threads and workers scale with the machine.
THREADS_PER_CORE = 4
MAX_STAGES = 64
MAX_SOURCES = 64
MAX_BATCH = 256
MAX_LINK_CAPACITY = 64  # every slot may hold a full frame
DEFAULT_MAX_PIXELS = 40_000_000  # a 8K frame is 33 Mpx
MAX_PIXELS_LIMIT = 16384 * 16384  # ~805 MB per BGR frame
MAX_SECONDS = 86_400.0  # timeouts and delays: a day at most, and finite


def max_threads() -> int:
    """Upper bound for `threads` and `workers`: 4 x the CPU cores of this machine."""
    return THREADS_PER_CORE * (os.cpu_count() or 1)


def check_cpu_bound(value: int | None) -> int | None:
    if value is not None and value > max_threads():
        raise ValueError(
            f"must be <= {max_threads()} ({THREADS_PER_CORE} x the {os.cpu_count() or 1} CPU cores here)"
        )
    return value


def seconds_field(default: float, description: str) -> Any:
    return Field(default, gt=0, le=MAX_SECONDS, allow_inf_nan=False, description=description)


class ConfigModel(BaseModel):
    """Base of the config models: unknown keys are errors; options may use their YAML aliases."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConfigPathError(ValueError):
    """A validation error that knows its YAML path (reported as `path: message (line N)`)."""

    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
