"""What a run writes: its output folder checked before anything opens, inputs never overwritten,
files replaced atomically."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.errors import ConfigError, OutputError
from pipeline.stage import get_kind


def prepare_output_dir(path: Path) -> None:
    """Create the output folder, or say in one line why it cannot be used."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # can we really write there (read-only mounts)?
            pass
    except OSError as exc:
        raise ConfigError(f"output {path}: cannot write there: {exc.strerror or exc}") from None


def input_files(config: PipelineConfig) -> set[Path]:
    """The files the sources read (video files, images of folders and globs)."""
    found: set[Path] = set()
    for src in config.sources:
        uri = str(src.uri)
        if "://" in uri or uri.isdigit():
            continue
        p = Path(uri).expanduser()
        if p.is_dir():
            found.update(f.resolve() for f in p.iterdir() if f.is_file())
        elif any(ch in uri for ch in "*?["):
            found.update(Path(f).resolve() for f in glob.glob(uri))
        elif p.exists():
            found.add(p.resolve())
    return found


def check_inputs_kept(config: PipelineConfig, output_dir: Path) -> None:
    """Refuse a run whose outputs would overwrite one of its inputs (before anything opens)."""
    inputs = input_files(config)
    if not inputs:
        return
    sources = [s.id for s in config.sources]
    for i, stage in enumerate(config.stages):
        cls = get_kind(stage.kind)
        options = stage.options if stage.options is not None else cls.Options.model_validate(stage.with_)
        for out in cls.output_paths(options, output_dir, sources):
            if out.resolve() in inputs:
                raise ConfigError(
                    f"stages[{i}] ({stage.id}): would overwrite its input {out}; choose another path"
                )


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: a reader sees the old file or the new one, never a
    part (a temporary file beside it, flushed to disk, then renamed over it)."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
