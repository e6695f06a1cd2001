"""Stage base class and the registry of stage kinds.

A stage kind is one class registered under a dotted name (`detect.haar`, `sink.jsonl`) with a
pydantic `Options` model (its `with:` block). Stages never touch sockets or threads: the
runner owns transport, placement, restarts and metrics, and calls

    setup() -> start_stream(info) -> process(frame)* -> end_stream(source) -> close()

Third-party packages add kinds through the `vigil.stages` entry-point group.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from pipeline.errors import ConfigError
from pipeline.frame import Frame, SourceInfo

ENTRY_POINT_GROUP = "vigil.stages"

# Modules of stages/ that hold the built-in kinds; imported on first registry use.
BUILTIN_MODULES = (
    "stages.debug",
    "stages.detect_haar",
    "stages.filters",
    "stages.render",
    "stages.sinks",
)
# Optional built-ins: imported when present (they land with later work).
OPTIONAL_BUILTIN_MODULES = (
    "stages.detect_dnn",
    "stages.classify",
    "stages.track",
    "stages.analytics",
)


class Options(BaseModel):
    """Base for a stage's `with:` options; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(Options):
    """This stage takes no options."""


@dataclass
class StageContext:
    """What the runner tells a stage about the run it is part of."""

    stage_id: str
    output_dir: Path = field(default_factory=lambda: Path("."))
    threads: int = 1  # CPU threads this stage may use for inference/OpenCV work
    sources: dict[str, SourceInfo] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("vigil"))
    report: dict[str, Any] = field(default_factory=dict)  # goes to the run summary


class Stage:
    """Base class of every stage kind.

    Subclasses set `kind` through `@register`, declare `Options`, and override `process`.
    `stateful = True` (trackers, sinks) means results depend on frame order, so the stage
    cannot run as several workers.
    """

    kind: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = NoOptions
    stateful: ClassVar[bool] = False

    def __init__(self, options: Options, context: StageContext) -> None:
        self.options = options
        self.context = context
        self.log = logging.getLogger(f"vigil.{context.stage_id}")

    @property
    def id(self) -> str:
        return self.context.stage_id

    def setup(self) -> None:
        """Load models, open files. Raise a `VigilError` with a clear message on failure."""

    def start_stream(self, info: SourceInfo) -> None:
        """A source is about to send frames (called once per source)."""

    def process(self, frame: Frame) -> Frame | None:
        """Return the frame (usually a changed copy), or None to drop it."""
        return frame

    def process_batch(self, frames: list[Frame]) -> list[Frame | None]:
        """Several frames at once; override where batched inference pays."""
        return [self.process(f) for f in frames]

    def end_stream(self, source: str) -> list[Frame]:
        """The source has ended: flush what is held back for it."""
        return []

    def close(self) -> None:
        """Release everything (also called after errors)."""


_REGISTRY: dict[str, type[Stage]] = {}
_LOADED = False


def register(kind: str) -> Callable[[type[Stage]], type[Stage]]:
    """Class decorator: make a Stage subclass available under `kind`."""

    def wrap(cls: type[Stage]) -> type[Stage]:
        if kind in _REGISTRY and _REGISTRY[kind] is not cls:
            raise ValueError(f"stage kind {kind!r} is registered twice ({_REGISTRY[kind].__module__}, {cls.__module__})")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return wrap


def _load_builtins() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for name in BUILTIN_MODULES:
        importlib.import_module(name)
    for name in OPTIONAL_BUILTIN_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not break the built-ins
            logging.getLogger("vigil").warning("stage plugin %s failed to load: %s", ep.name, exc)
            continue
        register(ep.name)(cls)


def kinds() -> dict[str, type[Stage]]:
    """Every registered kind, sorted by name."""
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def get_kind(kind: str) -> type[Stage]:
    _load_builtins()
    try:
        return _REGISTRY[kind]
    except KeyError:
        close = difflib.get_close_matches(kind, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known kinds: {', '.join(sorted(_REGISTRY))}"
        raise ConfigError(f"unknown stage kind {kind!r}{hint}") from None
