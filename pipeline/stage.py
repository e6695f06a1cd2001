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

# Built-in kinds and the module that registers each: a run imports only the modules it uses
# (importing every family costs about a second, mostly SciPy for the trackers).
BUILTIN_KINDS = {
    "analytics.line": "stages.analytics",
    "analytics.zone": "stages.analytics",
    "classify.age_gender": "stages.classify",
    "classify.emotion": "stages.classify",
    "classify.keras": "stages.classify",
    "debug.fault": "stages.debug",
    "detect.face": "stages.detect_dnn",
    "detect.haar": "stages.detect_haar",
    "detect.ssd": "stages.detect_dnn",
    "detect.yolo": "stages.detect_dnn",
    "filter.sketch": "stages.filters",
    "render": "stages.render",
    "sink.display": "stages.sinks",
    "sink.images": "stages.sinks",
    "sink.jsonl": "stages.sinks",
    "sink.video": "stages.sinks",
    "track.bytetrack": "stages.track",
    "track.iou": "stages.track",
    "track.sort": "stages.track",
}


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

    @classmethod
    def is_stateful(cls, options: Options) -> bool:
        """Whether results depend on earlier frames with these options (then workers must be 1)."""
        return cls.stateful

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
_PLUGINS_LOADED = False


def register(kind: str) -> Callable[[type[Stage]], type[Stage]]:
    """Class decorator: make a Stage subclass available under `kind`."""

    def wrap(cls: type[Stage]) -> type[Stage]:
        if kind in _REGISTRY and _REGISTRY[kind] is not cls:
            raise ValueError(
                f"stage kind {kind!r} is registered twice ({_REGISTRY[kind].__module__}, {cls.__module__})"
            )
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return wrap


def _load_plugins() -> None:
    """Third-party kinds from the `vigil.stages` entry-point group (a broken one is logged, skipped)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        try:
            cls = ep.load()
        except Exception as exc:
            logging.getLogger("vigil").warning("stage plugin %s failed to load: %s", ep.name, exc)
            continue
        register(ep.name)(cls)


def kinds() -> dict[str, type[Stage]]:
    """Every registered kind (built-ins and plugins), sorted by name."""
    for module in sorted(set(BUILTIN_KINDS.values())):
        importlib.import_module(module)
    _load_plugins()
    return dict(sorted(_REGISTRY.items()))


def get_kind(kind: str) -> type[Stage]:
    if kind not in _REGISTRY and kind in BUILTIN_KINDS:
        importlib.import_module(BUILTIN_KINDS[kind])
    if kind not in _REGISTRY:
        _load_plugins()
    try:
        return _REGISTRY[kind]
    except KeyError:
        known = sorted({*BUILTIN_KINDS, *_REGISTRY})
        close = difflib.get_close_matches(kind, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known kinds: {', '.join(known)}"
        raise ConfigError(f"unknown stage kind {kind!r}{hint}") from None
