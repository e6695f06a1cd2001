"""The pipeline file: YAML -> validated, typed config.

Every mistake is reported with its YAML path and line (`stages[2].with.scale_factor: must be
> 1 (line 14)`); an unknown stage kind suggests the closest names. Stage `with:` blocks are
validated by the stage kind's own `Options` model.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from pipeline.errors import ConfigError
from pipeline.redact import redact_uri
from pipeline.stage import get_kind
from pipeline.yaml_input import Path_, format_path, load_value, parse_yaml, read_text

__all__ = [
    "STREAM_SCHEMES",
    "LinksConfig",
    "PipelineConfig",
    "ReconnectConfig",
    "SourceConfig",
    "StageConfig",
    "apply_overrides",
    "format_path",
    "load_config",
    "max_threads",
    "parse_yaml",
    "config_from_dict",
    "with_sources",
    "uri_kind_by_name",
    "validate",
]

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
STREAM_SCHEMES = {"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt"}


def max_threads() -> int:
    """Upper bound for `threads` and `workers`: 4 x the CPU cores of this machine."""
    return THREADS_PER_CORE * (os.cpu_count() or 1)


def _check_cpu_bound(value: int | None) -> int | None:
    if value is not None and value > max_threads():
        raise ValueError(
            f"must be <= {max_threads()} ({THREADS_PER_CORE} x the {os.cpu_count() or 1} CPU cores here)"
        )
    return value


def _seconds(default: float, description: str) -> Any:
    return Field(default, gt=0, le=MAX_SECONDS, allow_inf_nan=False, description=description)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ReconnectConfig(_Model):
    """How a camera or stream that drops is reopened (delays grow by doubling)."""

    initial_delay_s: float = _seconds(0.5, "first wait before reopening, seconds (at most a day)")
    max_delay_s: float = _seconds(30.0, "longest wait between attempts, seconds (at most a day)")
    max_attempts: int | None = Field(
        default=None, ge=0, description="give up after this many failed reopens (none: never)"
    )


class SourceConfig(_Model):
    """One input: a video file, an image folder or glob, a webcam index, or an RTSP/HTTP URL."""

    id: str = Field("cam0", pattern=r"^[A-Za-z0-9_.-]+$", description="name of the source in results")
    uri: str | int = Field(
        description="file path, folder/glob, webcam index, rtsp:// http(s):// URL or synthetic://WxH"
    )
    realtime: bool = Field(False, description="pace a file at its own fps, like a camera (drops when behind)")
    every: int = Field(1, ge=1, description="keep one frame in N")
    resize: tuple[int, int] | None = Field(
        None, description="[width, height] to resize frames to after capture (at most max_pixels)"
    )
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=1,
        le=MAX_PIXELS_LIMIT,
        description="largest frame accepted, width x height; bigger images and frames are skipped "
        f"with a warning, image files before decoding (default 40 Mpx, at most {MAX_PIXELS_LIMIT})",
    )
    max_frames: int | None = Field(None, ge=1, description="stop after this many emitted frames")
    loop: bool = Field(
        False,
        description="restart a file at its end, from its first frame even with start_s (demos, soak tests)",
    )
    start_s: float = Field(
        0.0,
        ge=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="start a video file this many seconds in (files only; pts stay positions in the file; "
        "`loop: true` restarts at 0, not here)",
    )
    decode_threads: int | None = Field(
        None,
        ge=0,
        le=64,
        description="FFmpeg decoding threads; default: a video file up to 1920x1088 decodes on 1 "
        "(the stages keep the other cores; it costs a quarter less CPU a frame), larger files and "
        "streams as FFmpeg chooses; 0: FFmpeg's choice",
    )
    open_timeout_s: float = _seconds(10.0, "how long opening a stream may take, seconds (at most a day)")
    read_timeout_s: float = _seconds(
        10.0, "a stream silent this long counts as dropped, seconds (at most a day)"
    )
    reconnect: ReconnectConfig = Field(default_factory=lambda: ReconnectConfig())

    @field_validator("resize")
    @classmethod
    def _positive_size(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and (v[0] <= 0 or v[1] <= 0):
            raise ValueError("must be [width, height] with both > 0")
        return v

    @model_validator(mode="after")
    def _frame_size_bounded(self) -> SourceConfig:
        if self.resize is not None and self.resize[0] * self.resize[1] > self.max_pixels:
            w, h = self.resize
            raise _PathError(
                ("resize",), f"{w}x{h} is {w * h} pixels, more than max_pixels ({self.max_pixels})"
            )
        size = _synthetic_size(self.uri)
        if size is not None and size[0] * size[1] > self.max_pixels:
            raise _PathError(
                ("uri",), f"synthetic {size[0]}x{size[1]} is more than max_pixels ({self.max_pixels})"
            )
        return self

    @model_validator(mode="after")
    def _start_in_files_only(self) -> SourceConfig:
        # a folder or glob is told apart from a file only on disk: the reader ignores start_s there
        kind = uri_kind_by_name(self.uri)
        if self.start_s > 0 and kind is not None:
            what = {"camera": "a webcam", "stream": "a stream", "synthetic": "synthetic frames"}[kind]
            raise _PathError(("start_s",), f"start_s needs a video file, not {what}")
        return self


def uri_kind_by_name(uri: str | int) -> str | None:
    """camera | stream | synthetic when the uri alone says so; None for a file, folder or glob
    (told apart on disk, by `pipeline.sources.classify_uri`)."""
    if isinstance(uri, int) or uri.isdigit():
        return "camera"
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "synthetic":
        return "synthetic"
    return "stream" if scheme in STREAM_SCHEMES else None


def _synthetic_size(uri: str | int) -> tuple[int, int] | None:
    """(w, h) of a `synthetic://WxH` uri; None for other uris or a size the reader will reject."""
    if not isinstance(uri, str) or not uri.lower().startswith("synthetic://"):
        return None
    try:
        w, h = (int(x) for x in urlsplit(uri).netloc.lower().split("x"))
    except ValueError:
        return None
    return w, h


class StageConfig(_Model):
    """One stage of the pipeline."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="unique name of this stage")
    kind: str = Field(description="registered stage kind, e.g. detect.haar (see `vigil stages`)")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="options of the kind")
    after: str | None = Field(
        None, description="id of the stage feeding this one (default: the previous stage)"
    )
    placement: Literal["thread", "process"] = Field(
        "thread", description="run in a thread or its own process"
    )
    workers: int = Field(
        1,
        ge=1,
        description="replicas; results are merged back into sequence order (at most 4 x the CPU cores)",
    )
    on_error: Literal["skip", "stop"] = Field(
        "skip", description="on an exception: pass the frame on, or stop the run"
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads this stage may use (default: a fair share; at most 4 x the CPU cores)",
    )
    batch: int = Field(
        1,
        ge=1,
        le=MAX_BATCH,
        description=f"frames handed to process_batch at once when they are waiting (at most {MAX_BATCH})",
    )
    options: Any = Field(None, exclude=True)  # the validated Options of the kind, filled in by load

    @field_validator("with_", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("workers", "threads")
    @classmethod
    def _cpu_bound(cls, v: int | None) -> int | None:
        return _check_cpu_bound(v)


class CurveConfig(_Model):
    """ZeroMQ CURVE keys for tcp links (make them with `vigil keys gen DIR NAME`)."""

    secret_key: str = Field(description="this run's NAME.key_secret file")
    authorized: str | None = Field(
        default=None,
        description="a folder of public *.key files (or one file) allowed to connect; the run's own key always is",
    )


class LinksConfig(_Model):
    """Defaults for the links between stages."""

    policy: Literal["auto", "lossless", "latest"] = Field(
        default="auto",
        description="lossless: every frame, backpressure; latest: newest frame only, drops counted; "
        "auto: lossless for files and folders, latest for cameras and streams",
    )
    capacity: int = Field(
        default=4,
        ge=1,
        le=MAX_LINK_CAPACITY,
        description=f"frames a link holds before backpressure or drops (at most {MAX_LINK_CAPACITY})",
    )
    transport: Literal["auto", "inproc", "ipc", "tcp"] = Field(
        default="auto", description="auto: inproc between threads, ipc to processes; tcp forces loopback TCP"
    )
    host: str = Field(
        default="127.0.0.1", description="address tcp links bind to (never all interfaces unless told)"
    )
    stall_timeout_s: float = _seconds(
        120.0, "abort when no frame moves anywhere for this long, seconds (at most a day)"
    )
    curve: CurveConfig | None = Field(
        default=None, description="encrypt tcp links and let in only authorized keys (ZeroMQ CURVE)"
    )
    insecure: bool = Field(
        default=False, description="allow tcp links on a non-loopback host without CURVE (not recommended)"
    )

    @model_validator(mode="after")
    def _exposed_needs_curve(self) -> LinksConfig:
        if not _is_loopback(self.host) and self.curve is None and not self.insecure:
            raise _PathError(
                ("host",),
                f"{self.host} is reachable from other hosts: set links.curve (keys from `vigil keys gen`), "
                "or links.insecure: true to accept anyone on the network",
            )
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve anywhere
        return False


class PipelineConfig(_Model):
    """A pipeline file."""

    version: Literal[1] = 1
    name: str | None = None
    description: str | None = None
    sources: list[SourceConfig] = Field(
        default_factory=list, max_length=MAX_SOURCES, description=f"inputs (at most {MAX_SOURCES})"
    )
    stages: list[StageConfig] = Field(
        min_length=1, max_length=MAX_STAGES, description=f"at most {MAX_STAGES}"
    )
    links: LinksConfig = Field(default_factory=lambda: LinksConfig())
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for the whole run (default: all cores; at most 4 x the CPU cores)",
    )

    @field_validator("threads")
    @classmethod
    def _cpu_bound(cls, v: int | None) -> int | None:
        return _check_cpu_bound(v)

    @model_validator(mode="after")
    def _check_graph(self) -> PipelineConfig:
        ids = [s.id for s in self.stages]
        seen: set[str] = set()
        for i, stage in enumerate(self.stages):
            if stage.id in seen:
                raise _PathError(("stages", i, "id"), f"duplicate stage id {stage.id!r}")
            if stage.after is not None and stage.after not in ids[:i]:
                where = "a later stage" if stage.after in ids else "no stage"
                raise _PathError(
                    ("stages", i, "after"), f"{stage.after!r} is {where}; `after` must name an earlier stage"
                )
            seen.add(stage.id)
        src_ids = [s.id for s in self.sources]
        if len(set(src_ids)) != len(src_ids):
            raise _PathError(("sources",), f"source ids must be unique, got {src_ids}")
        return self

    def stage(self, stage_id: str) -> StageConfig:
        return next(s for s in self.stages if s.id == stage_id)

    def parent_of(self, index: int) -> str | None:
        """Id of the stage feeding stage `index` (None: the sources)."""
        stage = self.stages[index]
        if stage.after is not None:
            return stage.after
        return self.stages[index - 1].id if index > 0 else None


class _PathError(ValueError):
    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _friendly(err: ErrorDetails) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    simple = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "missing": "is required",
        "extra_forbidden": "unknown option",
        "literal_error": "must be one of {expected}",
        "string_pattern_mismatch": "must match {pattern}",
        "too_short": "needs at least {min_length} item(s)",
        "too_long": "has too many items (at most {max_length})",
    }
    if kind in simple:
        try:
            return simple[kind].format(**ctx)
        except KeyError:
            pass
    msg = err["msg"]
    msg = re.sub(r"^Value error, ", "", msg)
    return msg[0].lower() + msg[1:] if msg else kind


def _describe(
    path: Path_, message: str, lines: dict[Path_, int], origin: str, overridden: Collection[Path_] = ()
) -> str:
    message = " ".join(message.split())  # one problem, one line, whatever a validator wrote
    if any(tuple(path[: len(o)]) == o for o in overridden):
        return f"{format_path(path)}: {message} (from --set)"
    probe = tuple(path)
    while probe not in lines and probe:
        probe = probe[:-1]
    line = lines.get(probe)
    where = f" (line {line})" if line and origin == "file" else ""
    return f"{format_path(path) or '<top>'}: {message}{where}"


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> set[Path_]:
    """Apply `--set a.b.c=value` in place (stages and sources addressed by id or index; value is
    YAML). Returns the YAML paths that were set, so their errors say `from --set`."""
    changed: set[Path_] = set()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected PATH=VALUE, e.g. stages.faces.with.min_neighbors=6")
        key, value_text = item.split("=", 1)
        parts = key.strip().split(".")
        try:
            value = load_value(value_text)
        except ValueError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
        node: Any = raw
        resolved: list[str | int] = []
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            here = format_path(parts[: depth + 1])
            if isinstance(node, list):
                match = [i for i, el in enumerate(node) if isinstance(el, dict) and el.get("id") == part]
                if match:
                    idx = match[0]
                elif part.isdigit() and int(part) < len(node):
                    idx = int(part)
                else:
                    ids = [el.get("id") for el in node if isinstance(el, dict)]
                    raise ConfigError(
                        f"--set {item!r}: no entry {part!r} in {format_path(parts[:depth])} (ids: {ids})"
                    )
                resolved.append(idx)
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                resolved.append(part)
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
                    if node is None:
                        raise ConfigError(f"--set {item!r}: {here} is empty")
            else:
                raise ConfigError(f"--set {item!r}: {format_path(parts[:depth])} is not a mapping or list")
        changed.add(tuple(resolved))
    return changed


def validate(
    raw: dict[str, Any],
    lines: dict[Path_, int],
    name: str = "<config>",
    origin: str = "file",
    overridden: Collection[Path_] = (),
) -> PipelineConfig:
    """Validate a parsed pipeline; raise one ConfigError listing every problem found."""
    problems: list[str] = []

    def describe(path: Path_, message: str) -> str:
        return _describe(path, message, lines, origin, overridden)

    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            path = tuple(err["loc"])
            if err["type"] == "value_error" and isinstance(err.get("ctx", {}).get("error"), _PathError):
                pe = err["ctx"]["error"]
                problems.append(describe(path + pe.path, pe.message))
            else:
                problems.append(describe(_with_alias(path), _friendly(err)))
        raise ConfigError(f"{name}: invalid pipeline\n  " + "\n  ".join(problems)) from None
    for i, stage in enumerate(config.stages):
        try:
            cls = get_kind(stage.kind)
        except ConfigError as exc:
            problems.append(describe(("stages", i, "kind"), str(exc)))
            continue
        try:
            stage.options = cls.Options.model_validate(stage.with_)
        except ValidationError as exc:
            for err in exc.errors():
                path = ("stages", i, "with", *err["loc"])
                msg = _friendly(err)
                if err["type"] == "extra_forbidden":
                    msg += f" (known: {', '.join(cls.Options.model_fields) or 'none'})"
                problems.append(describe(path, msg))
            continue
        if stage.workers > 1 and cls.is_stateful(stage.options):
            problems.append(
                describe(
                    ("stages", i, "workers"), f"{stage.kind} keeps state across frames; workers must be 1"
                )
            )
    if problems:
        raise ConfigError(f"{name}: invalid pipeline\n  " + "\n  ".join(problems))
    return config


def _with_alias(path: Path_) -> Path_:
    return tuple("with" if p == "with_" else p for p in path)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Read, override (`--set`) and validate a pipeline file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such pipeline file")
    raw, lines = parse_yaml(read_text(p), str(p))
    overridden = apply_overrides(raw, overrides) if overrides else set()
    return validate(raw, lines, str(p), overridden=overridden)


def config_from_dict(data: dict[str, Any], name: str = "<pipeline>") -> PipelineConfig:
    """Validate a pipeline built in code (the same checks and messages as a file, without lines)."""
    return validate(copy.deepcopy(data), {}, name, origin="dict")


def with_sources(config: PipelineConfig, uris: Sequence[str | int]) -> PipelineConfig:
    """The pipeline with its sources replaced by `uris` (what `--source` does).

    One uri keeps the first source's id and options; several become cam0, cam1, ... with the
    first source's options. Bounded like a file (at most MAX_SOURCES, max_pixels): a bad uri is a
    ConfigError naming it (credentials masked).
    """
    if len(uris) > MAX_SOURCES:
        raise ConfigError(f"--source given {len(uris)} times; at most {MAX_SOURCES} sources")
    first = config.sources[0] if config.sources else None
    keep = first.model_dump(exclude={"uri", "id"}) if first else {}
    items = [u.strip() if isinstance(u, str) else u for u in uris]
    sources = []
    for i, uri in enumerate(items):
        source_id = first.id if first and len(items) == 1 else f"cam{i}"
        try:
            sources.append(SourceConfig(id=source_id, uri=uri, **keep))
        except ValidationError as exc:
            err = exc.errors()[0]
            pe = err.get("ctx", {}).get("error")
            message = pe.message if isinstance(pe, _PathError) else _friendly(err)
            raise ConfigError(f"--source {redact_uri(str(uri))!r}: {message}") from None
    return config.model_copy(update={"sources": sources})


def source_from_dict(data: Any) -> SourceConfig:
    """One source from plain data (an API call, `Pipeline.add_source`), with the checks and the
    one-line messages of a pipeline file's source; several problems are joined by '; '."""
    if not isinstance(data, dict):
        raise ConfigError("a source is a mapping: {id, uri, every?, resize?, realtime?, loop?, ...}")
    try:
        return SourceConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{format_path(_with_alias(tuple(err['loc']))) or 'source'}: {_friendly(err)}"
            for err in exc.errors()
        ]
        raise ConfigError("; ".join(problems)) from None
