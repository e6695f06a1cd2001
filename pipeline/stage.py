"""Stage base class and the registry of stage kinds.

A stage kind is one class, generic over its pydantic options model (its `with:` block):
`class Blur(Stage[BlurOptions])` gets `self.options: BlurOptions` and `Blur.Options is BlurOptions`.
Stages never touch sockets or threads: the runner owns transport, placement, restarts and
metrics, and calls

    setup() -> start_stream(info) -> process(frame)* -> end_stream(source) -> close()

Every kind, built-in or third-party, is declared in the `vigil.stages` entry-point group of its
distribution (`"detect.haar" = "stages.detect_haar:HaarDetector"` in pyproject.toml), and
`@register(kind)` on the class names the same kind. `get_kind` imports only the module of the
kind asked for, so a run loads only the families it uses.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict

from pipeline.errors import ConfigError, VigilError
from pipeline.frame import Frame, SourceInfo

ENTRY_POINT_GROUP = "vigil.stages"
DISTRIBUTION = "vigil-analytics"  # vigil's own distribution: its entry points are the built-in kinds

log = logging.getLogger("vigil")


class Options(BaseModel):
    """Base for a stage's `with:` options; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(Options):
    """This stage takes no options."""


OptionsModel = Options  # the base class under a name that the `Stage.Options` attribute does not shadow
OptionsT = TypeVar("OptionsT", bound=Options)
StageT = TypeVar("StageT", bound="type[Stage[Any]]")


@dataclass
class StageContext:
    """What the runner tells a stage about the run it is part of."""

    stage_id: str
    output_dir: Path = field(default_factory=lambda: Path("."))
    threads: int = 1  # CPU threads this stage may use for inference/OpenCV work
    sources: dict[str, SourceInfo] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("vigil"))
    report: dict[str, Any] = field(default_factory=dict)  # goes to the run summary


def _options_of(cls: type) -> type[Options] | None:
    """The options model a class names in its own generic bases (`Stage[X]`, `_Shell[X]`), if any.

    A type variable (an intermediate shell like `_DetectStage(Stage[DetectT])`) stands for its bound.
    """
    for base in cls.__dict__.get("__orig_bases__", ()):  # own bases only, not inherited ones
        origin = get_origin(base)
        if not (isinstance(origin, type) and issubclass(origin, Stage)):
            continue
        for arg in get_args(base):
            if isinstance(arg, TypeVar):
                arg = arg.__bound__
            if isinstance(arg, type) and issubclass(arg, Options):
                return arg
    return None


class Stage(Generic[OptionsT]):
    """Base class of every stage kind: subclass `Stage[MyOptions]` and override `process`.

    `Options` (the options model, for the engine's validation) is taken from the generic
    parameter; a plain `Stage` subclass takes `NoOptions`. `stateful = True` (trackers, sinks)
    means results depend on frame order, so the stage cannot run as several workers.
    """

    kind: ClassVar[str] = ""  # set by @register and checked against the entry point
    Options: ClassVar[type[OptionsModel]] = NoOptions
    stateful: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Options" in cls.__dict__:
            raise TypeError(
                f"{cls.__qualname__}: declare the options as a generic parameter, "
                f"class {cls.__name__}(Stage[{cls.__dict__['Options'].__name__}]), not as `Options =`"
            )
        found = _options_of(cls)
        if found is not None:
            cls.Options = found

    @classmethod
    def is_stateful(cls, options: OptionsT) -> bool:
        """Whether results depend on earlier frames with these options (then workers must be 1)."""
        return cls.stateful

    @classmethod
    def output_paths(cls, options: OptionsT, output_dir: Path, sources: Sequence[str]) -> list[Path]:
        """Files this stage will write for these sources, so a run can refuse to overwrite its
        inputs before anything opens. Stages that write files override it."""
        return []

    def __init__(self, options: OptionsT, context: StageContext) -> None:
        self.options: OptionsT = options
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


class NotInstalledError(VigilError):
    """vigil's own package metadata (which declares the built-in kinds) is missing."""


def register(kind: str) -> Callable[[StageT], StageT]:
    """Class decorator: name the kind a Stage subclass implements.

    The kind is found through the class's `vigil.stages` entry point, which must use the same
    name; this sets `cls.kind` for the class's own messages and lets tests check both agree.
    """

    def wrap(cls: StageT) -> StageT:
        cls.kind = kind
        return cls

    return wrap


_LOCK = threading.RLock()  # stages of one run may look up kinds from several threads
_REGISTRY: dict[str, type[Stage[Any]]] = {}  # kinds loaded so far
_BROKEN: dict[str, str] = {}  # plugin kind -> why it failed to load (tried once, warned once)
_ENTRY_POINTS: dict[str, metadata.EntryPoint] | None = None  # read once: scanning metadata costs ms


def refresh_kinds() -> None:
    """Forget loaded kinds and read the entry points again (a plugin installed while running; tests)."""
    global _ENTRY_POINTS
    with _LOCK:
        _REGISTRY.clear()
        _BROKEN.clear()
        _ENTRY_POINTS = None
        importlib.invalidate_caches()  # importlib.metadata caches what it found on each sys.path entry


def _is_builtin(ep: metadata.EntryPoint) -> bool:
    name = ep.dist.name if ep.dist is not None else ""
    return re.sub(r"[-_.]+", "-", name).lower() == DISTRIBUTION


def _entry_points() -> dict[str, metadata.EntryPoint]:
    """Kind -> entry point; vigil's own win over a plugin that reuses a built-in name."""
    global _ENTRY_POINTS
    if _ENTRY_POINTS is None:
        try:
            metadata.distribution(DISTRIBUTION)
        except metadata.PackageNotFoundError:
            raise NotInstalledError(
                f"vigil's package metadata ({DISTRIBUTION}) is missing, so no stage kind is known: "
                "run `pip install -e .` in the vigil checkout"
            ) from None
        found: dict[str, metadata.EntryPoint] = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            old = found.setdefault(ep.name, ep)
            if old is not ep:
                keep, drop = (ep, old) if _is_builtin(ep) else (old, ep)
                log.warning(
                    "stage kind %s is declared twice: using %s, ignoring %s", ep.name, keep.value, drop.value
                )
                found[ep.name] = keep
        _ENTRY_POINTS = found
    return _ENTRY_POINTS


def _load(ep: metadata.EntryPoint) -> type[Stage[Any]]:
    """Import the class an entry point names and check it is the Stage subclass of that kind."""
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise TypeError(f"{ep.value} is not a Stage subclass")
    named = cls.__dict__.get("kind")  # its own @register, not one inherited from the class it extends
    if named and named != ep.name:
        raise TypeError(f"{ep.value} is registered as {named!r}, not {ep.name!r}")
    cls.kind = ep.name
    return cls


def _load_kind(kind: str, ep: metadata.EntryPoint) -> type[Stage[Any]] | None:
    """Load one kind; a broken plugin is logged and gives None, a broken built-in raises."""
    with _LOCK:
        if kind in _REGISTRY or kind in _BROKEN:
            return _REGISTRY.get(kind)
        if _is_builtin(ep):
            _REGISTRY[kind] = _load(ep)
            return _REGISTRY[kind]
        try:
            _REGISTRY[kind] = _load(ep)
        except Exception as exc:  # third-party code: any failure to import
            _BROKEN[kind] = f"{type(exc).__name__}: {exc}"
            log.warning("stage plugin %s (%s) failed to load: %s", kind, ep.value, _BROKEN[kind])
        return _REGISTRY.get(kind)


def kinds() -> dict[str, type[Stage[Any]]]:
    """Every kind (built-ins and plugins), sorted by name; broken plugins are logged and left out."""
    loaded = {kind: _load_kind(kind, ep) for kind, ep in sorted(_entry_points().items())}
    return {kind: cls for kind, cls in loaded.items() if cls is not None}


def get_kind(kind: str) -> type[Stage[Any]]:
    """The class of a stage kind, importing only the module that declares it."""
    found = _REGISTRY.get(kind)
    if found is not None:
        return found
    eps = _entry_points()
    ep = eps.get(kind)
    if ep is None:
        known = sorted(eps)
        close = difflib.get_close_matches(kind, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known kinds: {', '.join(known)}"
        raise ConfigError(f"unknown stage kind {kind!r}{hint}")
    cls = _load_kind(kind, ep)
    if cls is None:
        raise ConfigError(f"stage kind {kind!r} ({ep.value}) failed to load: {_BROKEN[kind]}")
    return cls
