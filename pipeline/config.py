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
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from pipeline.config_fields import MAX_SOURCES, ConfigPathError, max_threads
from pipeline.config_schema import LinksConfig, PipelineConfig, StageConfig
from pipeline.errors import ConfigError
from pipeline.redact import redact_uri
from pipeline.source_config import STREAM_SCHEMES, ReconnectConfig, SourceConfig, uri_kind_by_name
from pipeline.stage import get_kind
from pipeline.yaml_input import Path_, format_path, load_value, parse_yaml, read_text

# The models live in pipeline.config_schema and pipeline.source_config, their bounds in
# pipeline.config_fields; this module reads, overrides and validates a pipeline file, and is where
# the rest of vigil imports them from.
__all__ = [
    "MAX_SOURCES",
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
            if err["type"] == "value_error" and isinstance(err.get("ctx", {}).get("error"), ConfigPathError):
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
            message = pe.message if isinstance(pe, ConfigPathError) else _friendly(err)
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
