"""Where sinks put their files: paths against the run's output folder, one name per source."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.stage import StageContext


def output_path(context: StageContext, path: str | Path) -> Path:
    """`path` as given when absolute, else under the run's `output_dir`."""
    return under(context.output_dir, path)


def under(output_dir: str | Path, path: str | Path) -> Path:
    """`path` as given when absolute, else under `output_dir`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(output_dir) / p


def safe_source(source: str) -> str:
    """A source id usable inside a file name (path separators and odd characters -> `_`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", source) or "source"


def per_source_path(context: StageContext | Path, path: str, source: str, several: bool) -> Path:
    """The file for one source: `{source}` in `path` is filled in; otherwise, when the run has
    several sources, `_<source>` goes before the suffix (annotated.mp4 -> annotated_door.mp4)."""
    name = safe_source(source)
    folder = context.output_dir if isinstance(context, StageContext) else context
    if "{source}" in path:
        return under(folder, path.replace("{source}", name))
    p = under(folder, path)
    return p.with_name(f"{p.stem}_{name}{p.suffix}") if several else p


def relative_to_output(context: StageContext, path: Path) -> str:
    """How an event names a file it points to: relative to the run's output folder when inside it."""
    try:
        return path.resolve().relative_to(Path(context.output_dir).resolve()).as_posix()
    except ValueError:
        return str(path)
