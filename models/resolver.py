"""Find model files: a catalog name or a user's own file, verified against the catalog sha256.

Search order: every folder in `$VIGIL_MODELS` (an `os.pathsep`-separated list), then the
weights vigil trained itself and ships (`models/weights/`, see `vigil train`), then the user
cache `~/.cache/vigil/models` (`$XDG_CACHE_HOME` honoured). Nothing is downloaded here;
a missing or corrupt file is one line of `ModelError` that names the file, where it looked
and the command that gets it (`vigil models fetch NAME`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.catalog import (
    KIND_BACKENDS,
    MODEL_SUFFIXES,
    Catalog,
    Decoder,
    FormatKind,
    InputSpec,
    Labels,
    Licence,
    ModelEntry,
    ModelFile,
    ModelFormat,
    Task,
    load_catalog,
)
from models.integrity import DigestCache, file_matches, vigil_cache_dir
from pipeline.errors import ModelError

# A user's own YOLO file: the Ultralytics/YOLOv5+ convention (RGB, /255, centred letterbox).
USER_YOLO_INPUT = InputSpec(colour="RGB", std=255.0, resize="letterbox_center", pad_value=114)


def models_cache_dir() -> Path:
    """Where `vigil models fetch` installs files: `~/.cache/vigil/models`."""
    return vigil_cache_dir() / "models"


SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights"  # first-party, trained by `vigil train`


def search_roots() -> list[Path]:
    """`$VIGIL_MODELS` entries (in order), then the shipped first-party weights, then the user cache."""
    roots = [
        Path(p).expanduser().resolve()
        for p in os.environ.get("VIGIL_MODELS", "").split(os.pathsep)
        if p.strip()
    ]
    for extra in (SHIPPED_WEIGHTS, models_cache_dir()):
        if extra not in roots:
            roots.append(extra)
    return roots


def _roots_text(roots: Sequence[Path]) -> str:
    return ", ".join(str(r.absolute()) for r in roots) or "(nowhere)"


@dataclass(frozen=True)
class ResolvedModel:
    """A model whose files were found (and verified): what a backend and a wrapper need."""

    entry: ModelEntry
    format: ModelFormat
    backend: str | None  # the requested backend that reads this format (None: not asked)
    root: Path
    labels: tuple[str, ...] | None
    label_offset: int = 0
    user_file: bool = False

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def path(self) -> Path:
        """What the runtime opens: the model file, or the SavedModel directory."""
        return self.format.model_path(self.root)

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(self.root / f.path for f in self.format.files)

    def file_path(self, role: str) -> Path | None:
        f = self.format.file(role)
        return None if f is None else self.root / f.path


def present_root(fmt: ModelFormat, roots: Sequence[Path]) -> Path | None:
    """The first search root that holds every file of `fmt`, or None."""
    for root in roots:
        if all((root / f.path).is_file() for f in fmt.files):
            return root
    return None


def _verify(
    entry: ModelEntry, fmt: ModelFormat, root: Path, roots: Sequence[Path], cache: DigestCache
) -> None:
    for f in fmt.files:
        path = root / f.path
        ok, reason = file_matches(path, f.sha256, f.bytes, cache)
        if not ok:
            raise ModelError(
                f"model {entry.name!r}: file {path} is corrupt ({reason}); looked in: {_roots_text(roots)}; "
                f"delete it and run: vigil models fetch {entry.name}"
            )


def _missing_error(entry: ModelEntry, fmt: ModelFormat, roots: Sequence[Path]) -> ModelError:
    missing = next(f for f in fmt.files if not any((r / f.path).is_file() for r in roots))
    how = f"get it with: vigil models fetch {entry.name}"
    if missing.source is not None and missing.source.shipped:
        how = "it ships with vigil (models/weights/): reinstall the package (pip install --force-reinstall)"
    elif missing.source is not None and not missing.source.downloadable:
        how = (
            f"it has no download (derived: {missing.source.derived}); copy it into one of those folders, "
            f"or run `vigil models fetch {entry.name}` for the formats that have one"
        )
    return ModelError(
        f"model {entry.name!r} ({fmt.id}): file {missing.path} not found; looked in: {_roots_text(roots)} "
        f"(set VIGIL_MODELS to add folders); {how}"
    )


def _candidates(entry: ModelEntry, backends: Sequence[str] | None) -> list[tuple[str | None, ModelFormat]]:
    if backends is None:
        return [(None, f) for f in entry.formats if f.backends]
    out: list[tuple[str | None, ModelFormat]] = []
    for backend in backends:
        out += [(backend, f) for f in entry.formats_for(backend) if all(f is not g for _, g in out)]
    if not out:
        raise ModelError(
            f"model {entry.name!r} has no format that {'/'.join(backends)} can run "
            f"(it runs on: {', '.join(entry.backends) or 'no backend'})"
        )
    return out


def looks_like_path(model: str) -> bool:
    return (
        "/" in model
        or os.sep in model
        or Path(model).suffix.lower() in MODEL_SUFFIXES
        or Path(model).exists()
    )


def load_label_file(path: str | Path) -> tuple[str, ...]:
    from models.labels import load_labels  # the label-file parser lives with the wrappers

    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(f"labels file {p} not found")
    return tuple(load_labels(p))


def resolve(
    model: str,
    backends: Sequence[str] | None = None,
    *,
    labels: str | Path | None = None,
    catalog: Catalog | None = None,
    roots: Sequence[Path] | None = None,
    verify: bool = True,
    cache: DigestCache | None = None,
) -> ResolvedModel:
    """Find `model` (catalog name/alias, or a file path) for the first of `backends` that can run it.

    Formats are tried backend by backend, in catalog order; the first one whose files are all
    present in one search root wins. `labels` (a file) overrides the catalog's class names.
    """
    catalog = catalog or load_catalog()
    entry = catalog.find(model)
    if entry is None and looks_like_path(model):
        return resolve_user_file(model, backends, labels=labels)
    if entry is None:
        catalog.get(model)  # raises the "unknown model, did you mean" error
        raise AssertionError("unreachable")
    roots = list(roots) if roots is not None else search_roots()
    candidates = _candidates(entry, backends)
    for backend, fmt in candidates:
        root = present_root(fmt, roots)
        if root is None:
            continue
        if verify:
            _verify(entry, fmt, root, roots, cache or DigestCache())
        names = load_label_file(labels) if labels else entry.label_names()
        offset = 0 if labels else (entry.labels.offset if entry.labels else 0)
        return ResolvedModel(entry, fmt, backend or fmt.backends[0], root, names, offset)
    raise _missing_error(entry, candidates[0][1], roots)


def _user_kind(path: Path) -> FormatKind:
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelError(f"model folder {path} has no saved_model.pb (only SavedModel folders are supported)")
    kind = MODEL_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ModelError(
            f"model file {path}: unknown type {path.suffix!r} (known: {', '.join(sorted(MODEL_SUFFIXES))})"
        )
    if kind == "openvino_ir" and not path.with_suffix(".bin").is_file():
        raise ModelError(
            f"model file {path}: the IR weights {path.with_suffix('.bin').name} are missing beside it"
        )
    return kind


def resolve_user_file(
    model: str | Path,
    backends: Sequence[str] | None = None,
    *,
    labels: str | Path | None = None,
    decoder: Decoder = "yolo",
    input_spec: InputSpec | None = None,
    task: Task = "object_detection",
) -> ResolvedModel:
    """A user's own model file or SavedModel folder (no sha256: it is not in the catalog).

    Defaults describe a YOLO detector (layout auto-detected by `decode_yolo`); the input size
    comes from the model's own input shape at load time.
    """
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelError(
            f"model {str(model)!r} is neither a catalog name nor an existing file "
            f"(looked for the file relative to {Path.cwd()}); `vigil models list` shows the catalog"
        )
    kind = _user_kind(path)
    allowed = KIND_BACKENDS[kind]
    if backends is not None and not any(b in allowed for b in backends):
        raise ModelError(
            f"model file {path}: {'/'.join(backends)} cannot read {kind} files (use {', '.join(allowed)})"
        )
    rel = f"{path.name}/saved_model.pb" if kind == "savedmodel" else path.name
    files = [ModelFile(path=rel)]
    if kind == "openvino_ir":
        files.append(ModelFile(path=path.with_suffix(".bin").name, role="weights"))
    names = load_label_file(labels) if labels else None
    fmt = ModelFormat(
        id=kind,
        kind=kind,
        backends=allowed,
        files=tuple(files),
        input=input_spec or USER_YOLO_INPUT,
        decoder=decoder,
    )
    entry = ModelEntry(
        name=path.stem,
        task=task,
        summary=f"user file {path}",
        licence=Licence(name="unknown (user file)"),
        formats=(fmt,),
        labels=Labels(names=names) if names else None,
    )
    backend = next((b for b in (backends or allowed) if b in allowed), allowed[0])
    return ResolvedModel(entry, fmt, backend, path.parent.resolve(), names, 0, user_file=True)
