"""The pipeline file: YAML -> validated, typed config.

Every mistake is reported with its YAML path and line (`stages[2].with.scale_factor: must be
> 1 (line 14)`); an unknown stage kind suggests the closest names. Stage `with:` blocks are
validated by the stage kind's own `Options` model.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError
from pipeline.stage import get_kind

Path_ = tuple[str | int, ...]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ReconnectConfig(_Model):
    """How a camera or stream that drops is reopened (delays grow by doubling)."""

    initial_delay_s: float = Field(0.5, gt=0, description="first wait before reopening, seconds")
    max_delay_s: float = Field(30.0, gt=0, description="longest wait between attempts, seconds")
    max_attempts: int | None = Field(
        None, ge=0, description="give up after this many failed reopens (none: never)"
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
        None, description="[width, height] to resize frames to after capture"
    )
    max_frames: int | None = Field(None, ge=1, description="stop after this many emitted frames")
    loop: bool = Field(False, description="restart a file at its end (demos, soak tests)")
    open_timeout_s: float = Field(10.0, gt=0, description="how long opening a stream may take, seconds")
    read_timeout_s: float = Field(
        10.0, gt=0, description="a stream silent this long counts as dropped, seconds"
    )
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)

    @field_validator("resize")
    @classmethod
    def _positive_size(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and (v[0] <= 0 or v[1] <= 0):
            raise ValueError("must be [width, height] with both > 0")
        return v


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
    workers: int = Field(1, ge=1, le=64, description="replicas; results are merged back into sequence order")
    on_error: Literal["skip", "stop"] = Field(
        "skip", description="on an exception: pass the frame on, or stop the run"
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads this stage may use (default: a fair share)"
    )
    batch: int = Field(
        1, ge=1, le=256, description="frames handed to process_batch at once when they are waiting"
    )
    options: Any = Field(None, exclude=True)  # the validated Options of the kind, filled in by load

    @field_validator("with_", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v


class LinksConfig(_Model):
    """Defaults for the links between stages."""

    policy: Literal["auto", "lossless", "latest"] = Field(
        "auto",
        description="lossless: every frame, backpressure; latest: newest frame only, drops counted; "
        "auto: lossless for files and folders, latest for cameras and streams",
    )
    capacity: int = Field(4, ge=1, le=1024, description="frames a link holds before backpressure or drops")
    transport: Literal["auto", "inproc", "ipc", "tcp"] = Field(
        "auto", description="auto: inproc between threads, ipc to processes; tcp forces loopback TCP"
    )
    host: str = Field("127.0.0.1", description="address tcp links bind to (never all interfaces unless told)")
    stall_timeout_s: float = Field(
        120.0, gt=0, description="abort when no frame moves anywhere for this long"
    )


class PipelineConfig(_Model):
    """A pipeline file."""

    version: Literal[1] = 1
    name: str | None = None
    description: str | None = None
    sources: list[SourceConfig] = Field(default_factory=list)
    stages: list[StageConfig] = Field(min_length=1)
    links: LinksConfig = Field(default_factory=LinksConfig)
    threads: int | None = Field(None, ge=1, description="CPU threads for the whole run (default: all cores)")

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


# ---------------------------------------------------------------------------------------- YAML


def _line_map(node: yaml.Node, path: Path_ = (), lines: dict[Path_, int] | None = None) -> dict[Path_, int]:
    """YAML path -> 1-based line of its value."""
    lines = {} if lines is None else lines
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _line_map(value, (*path, key.value), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _line_map(value, (*path, i), lines)
    return lines


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _friendly(err: dict[str, Any]) -> str:
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
            value = yaml.safe_load(value_text)
        except yaml.YAMLError as exc:
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


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, name: str = "<config>") -> tuple[dict[str, Any], dict[Path_, int]]:
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            raw = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{name}: not valid YAML: {problem}{where}") from None
    if raw is None:
        raise ConfigError(f"{name}: the file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: the top level must be a mapping with version, sources, stages")
    return raw, _line_map(node)


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
                problems.append(describe(pe.path, pe.message))
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
    raw, lines = parse_yaml(p.read_text(encoding="utf-8"), str(p))
    overridden = apply_overrides(raw, overrides) if overrides else set()
    return validate(raw, lines, str(p), overridden=overridden)


def config_from_dict(data: dict[str, Any], name: str = "<pipeline>") -> PipelineConfig:
    """Validate a pipeline built in code (the same checks and messages as a file, without lines)."""
    return validate(copy.deepcopy(data), {}, name, origin="dict")


def with_sources(config: PipelineConfig, uris: Sequence[str | int]) -> PipelineConfig:
    """The pipeline with its sources replaced by `uris` (what `--source` does).

    One uri keeps the first source's id and options; several become cam0, cam1, ... with the
    first source's options.
    """
    first = config.sources[0] if config.sources else None
    keep = first.model_dump(exclude={"uri", "id"}) if first else {}
    items = [u.strip() if isinstance(u, str) else u for u in uris]
    sources = [
        SourceConfig(id=(first.id if first and len(items) == 1 else f"cam{i}"), uri=uri, **keep)
        for i, uri in enumerate(items)
    ]
    return config.model_copy(update={"sources": sources})
