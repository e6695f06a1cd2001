"""`vigil models list|verify|fetch`: where model files are, whether they are intact, getting them.

Each `cmd_*(args) -> int` returns an exit code (0 ok, 4 = a model problem, like ModelError)
and tolerates a namespace holding only `names`, so tests may call it directly. Errors are
one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ModelError

if TYPE_CHECKING:  # the models package is imported when a command runs, not with the parser
    from models.catalog import ModelEntry, ModelFile
    from models.integrity import DigestCache

EXIT_MODEL = ModelError.exit_code


def _entries(names: Sequence[str] | None) -> list[ModelEntry]:
    from models.catalog import load_catalog

    catalog = load_catalog()
    if not names or list(names) == ["all"]:
        return list(catalog.models)
    return [catalog.get(n) for n in names]


def model_status(entry: ModelEntry, roots: Sequence[Path] | None = None) -> dict[str, Any]:
    """Presence of each format: {'name', 'task', 'backends', 'status', 'formats': {id: root|None}}."""
    from models.resolver import present_root, search_roots

    roots = list(roots) if roots is not None else search_roots()
    formats = {f.id: present_root(f, roots) for f in entry.formats}
    runnable = [f.id for f in entry.formats if f.backends]
    present = [i for i in runnable if formats[i] is not None]
    status = "present" if len(present) == len(runnable) else ("partial" if present else "missing")
    return {
        "name": entry.name,
        "task": entry.task,
        "backends": list(entry.backends),
        "status": status,
        "formats": {k: (str(v) if v else None) for k, v in formats.items()},
        "licence": entry.licence.name,
        "flag": entry.licence.training_data_flag,
    }


def cmd_list(args: argparse.Namespace) -> int:
    """Every catalog model: task, backends, which formats are present."""
    from models.resolver import search_roots

    rows = [model_status(e) for e in _entries(getattr(args, "names", None))]
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'model'.ljust(width)}  {'task':<16}  {'backends':<29}  {'status':<7}  formats")
    for r in rows:
        fmts = ", ".join(f"{k}{'' if v else ' (missing)'}" for k, v in r["formats"].items())
        flag = "  [training-data terms]" if r["flag"] else ""
        print(
            f"{r['name'].ljust(width)}  {r['task']:<16}  {', '.join(r['backends']):<29}  {r['status']:<7}  {fmts}{flag}"
        )
    print(f"searched: {', '.join(str(p) for p in search_roots())}; get files with: vigil models fetch NAME")
    return 0


def _verify_file(entry: ModelEntry, spec: ModelFile, path: Path, cache: DigestCache) -> bool:
    """Re-hash one file (always re-read: this is the explicit check); print ok or CORRUPT."""
    from models.integrity import sha256_file

    actual = sha256_file(path)
    if actual == spec.sha256 and path.stat().st_size == spec.bytes:
        cache.digest(path)  # refresh the cache entry
        print(f"ok       {entry.name}: {path}")
        return True
    print(
        f"CORRUPT  {entry.name}: {path} (sha256 {actual[:12]}…, expected {(spec.sha256 or '')[:12]}…); "
        f"delete it and run: vigil models fetch {entry.name}"
    )
    return False


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-hash every present file of the named (default: all) models; 4 when one does not match
    or when no model file besides the shipped weights is present (nothing found is not a success)."""
    from models.integrity import DigestCache
    from models.resolver import search_roots

    try:
        entries = _entries(getattr(args, "names", None))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    roots, cache, bad, checked, downloaded = search_roots(), DigestCache(), 0, 0, 0
    for entry in entries:
        specs: dict[str, ModelFile] = {}
        for spec in (spec for fmt in entry.formats for spec in fmt.files):
            specs.setdefault(spec.path, spec)  # formats may share a file: check it once
        for spec in specs.values():
            for path in (root / spec.path for root in roots):
                if path.is_file():
                    checked += 1
                    downloaded += not (spec.source is not None and spec.source.shipped)
                    bad += not _verify_file(entry, spec, path, cache)
    if not checked or (not downloaded and not getattr(args, "names", None)):  # only the shipped weights
        where = ", ".join(str(r) for r in roots) or "(no search path)"
        print(
            f"error: no model files found in {where}; set VIGIL_MODELS or run vigil models fetch NAME",
            file=sys.stderr,
        )
        return EXIT_MODEL
    print(f"{checked} file(s) checked, {bad} corrupt")
    return EXIT_MODEL if bad else 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download the named models (or 'all') into the cache, verified; 4 when one cannot be had."""
    from models.fetch import fetch
    from models.resolver import models_cache_dir

    failed = 0
    try:
        entries = _entries(getattr(args, "names", None) or ["all"])
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    dest = Path(args.dest) if getattr(args, "dest", None) else models_cache_dir()
    for entry in entries:
        try:
            report = fetch(
                entry.name,
                dest=dest,
                formats=getattr(args, "format", None) or None,
                find_links=getattr(args, "find_links", None),
                index_url=getattr(args, "index_url", None),
                force=bool(getattr(args, "force", False)),
            )
        except ModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        for path in report.installed:
            print(f"installed  {entry.name}: {path}")
        for path in report.present:
            print(f"present    {entry.name}: {path}")
        for note in report.unavailable:
            print(f"no source  {entry.name}: {note}")
        if not report.ok:
            failed += 1
            print(f"error: {entry.name}: no runnable format is complete after fetching", file=sys.stderr)
    return EXIT_MODEL if failed else 0


def add_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Register `models list|verify|fetch` on the top-level subparsers."""
    p = subparsers.add_parser(
        "models",
        help="list, verify and fetch model files",
        description="Model files are looked up in $VIGIL_MODELS, then ~/.cache/vigil/models.",
    )
    sub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="every catalog model: task, backends, present or missing")
    ls.add_argument("names", nargs="*", help="only these models")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_list)
    ver = sub.add_parser("verify", help="re-hash every present model file (exit 4 on a mismatch)")
    ver.add_argument("names", nargs="*", help="only these models")
    ver.set_defaults(func=cmd_verify)
    fe = sub.add_parser("fetch", help="download models from their source into the cache (sha256 verified)")
    fe.add_argument("names", nargs="+", help="catalog names, or 'all'")
    fe.add_argument("--format", action="append", metavar="ID", help="only this format id (repeatable)")
    fe.add_argument("--dest", metavar="DIR", help="install here instead of ~/.cache/vigil/models")
    fe.add_argument(
        "--find-links", metavar="DIR|URL", help="pip: take wheels from here, no index (offline mirrors)"
    )
    fe.add_argument("--index-url", metavar="URL", help="pip: use this package index")
    fe.add_argument("--force", action="store_true", help="download even when a valid copy exists")
    fe.set_defaults(func=cmd_fetch)
    return p
