"""`vigil stages`: every kind with its options, from the Options models' field descriptions."""

from __future__ import annotations

import inspect

from pydantic import BaseModel

from pipeline.config import SourceConfig, StageConfig
from pipeline.stage import Stage, get_kind, kinds


def _first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc or "").split("\n", 1)[0]


def _options(model: type[BaseModel], indent: str = "    ") -> list[str]:
    lines = []
    for name, field in model.model_fields.items():
        if field.exclude:  # internal (filled in by validation)
            continue
        key = field.alias or name
        default = (
            "required" if field.is_required() else f"default {field.get_default(call_default_factory=True)!r}"
        )
        ann = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
        lines.append(f"{indent}{key} ({ann}; {default})")
        if field.description:
            lines.append(f"{indent}    {field.description}")
    return lines


def list_kinds() -> str:
    rows = ["Stage kinds (vigil stages KIND for options):", ""]
    for kind, cls in kinds().items():
        rows.append(f"  {kind:<22} {_first_line(cls.__doc__)}")
        names = [f.alias or n for n, f in cls.Options.model_fields.items() if not f.exclude]
        if names:
            rows.append(f"  {'':<22} options: {', '.join(names)}")
    rows += [
        "",
        "Per-stage keys (beside kind/with):",
        *_options(StageConfig),
        "",
        "Source keys (sources: list):",
        *_options(SourceConfig),
    ]
    return "\n".join(rows)


def describe_kind(kind: str) -> str:
    cls: type[Stage] = get_kind(kind)
    doc = inspect.cleandoc(cls.__doc__ or "")
    rows = [f"{kind}  ({cls.__module__}.{cls.__name__})", "", doc, ""]
    if cls.stateful:
        rows.append("Keeps state across frames: runs as one worker.")
    opts = _options(cls.Options, "  ")
    rows += ["Options (with:):", *(opts or ["  none"])]
    return "\n".join(rows)
