"""`vigil stages`: every kind with its options, from the classes' docstrings and Options models.

Relies only on `kinds()`, `get_kind()`, each class's docstring and its `Options` pydantic model,
so it documents built-in and third-party kinds alike.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel

from pipeline.config import LinksConfig, SourceConfig, StageConfig
from pipeline.stage import get_kind, kinds

HIDDEN_PREFIXES = ("debug.",)  # kinds for tests; listed with --all
# a sentence ends at . ! or ? followed by space and a capital, backtick or bracket ("e.g. x" goes on)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\[])")


def summary(doc: str | None) -> str:
    """The first sentence of a docstring, whole, on one line (its first paragraph if none ends)."""
    paragraph = inspect.cleandoc(doc or "").split("\n\n", 1)[0]
    text = " ".join(paragraph.split())
    return _SENTENCE_END.split(text, 1)[0]


def format_type(annotation: Any) -> str:
    """A type as a user reads it: Literal values as `a | b`, Optional as `X | None`."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(str(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(format_type(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin is None and isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _options(model: type[BaseModel], indent: str = "    ") -> list[str]:
    lines = []
    for name, field in model.model_fields.items():
        if field.exclude:  # internal (filled in by validation)
            continue
        key = field.alias or name
        default = (
            "required" if field.is_required() else f"default {field.get_default(call_default_factory=True)!r}"
        )
        lines.append(f"{indent}{key} ({format_type(field.annotation)}; {default})")
        if field.description:
            lines.append(f"{indent}    {field.description}")
    return lines


def is_hidden(kind: str) -> bool:
    """Kinds left out of the listing unless asked for (`debug.*`, made for tests)."""
    return kind.startswith(HIDDEN_PREFIXES)


def list_kinds(include_debug: bool = False) -> str:
    """Every kind with its one-sentence summary and option names, then the per-stage, source and link keys."""
    rows = ["Stage kinds (vigil stages KIND for options):", ""]
    hidden = 0
    for kind, cls in kinds().items():
        if is_hidden(kind) and not include_debug:
            hidden += 1
            continue
        rows.append(f"  {kind:<22} {summary(cls.__doc__)}")
        names = [f.alias or n for n, f in cls.Options.model_fields.items() if not f.exclude]
        if names:
            rows.append(f"  {'':<22} options: {', '.join(names)}")
    if hidden:
        rows += ["", f"  ({hidden} debug kind(s) for tests not shown; vigil stages --all lists them)"]
    rows += [
        "",
        "Per-stage keys (beside kind/with):",
        *_options(StageConfig),
        "",
        "Source keys (sources: list):",
        *_options(SourceConfig),
        "",
        "Link keys (links:):",
        *_options(LinksConfig),
    ]
    return "\n".join(rows)


def describe_kind(kind: str) -> str:
    """One kind in full: its docstring, whether it keeps state, every option with type and default."""
    cls = get_kind(kind)
    doc = inspect.cleandoc(cls.__doc__ or "")
    rows = [f"{kind}  ({cls.__module__}.{cls.__name__})", "", doc, ""]
    if cls.stateful:
        rows.append("Keeps state across frames: runs as one worker.")
    opts = _options(cls.Options, "  ")
    rows += ["Options (with:):", *(opts or ["  none"])]
    return "\n".join(rows)
