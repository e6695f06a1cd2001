"""`vigil models list|verify|fetch` and `vigil bench models`, as argparse commands.

Each `cmd_*(args) -> int` returns an exit code (0 ok, 4 = a model problem, like ModelError)
and tolerates a namespace holding only `names`, so a caller may build its own parser;
`add_models_commands(subparsers)` / `add_bench_models_command(bench_subparsers)` register the
full option set. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.catalog import ModelEntry, load_catalog
from models.integrity import DigestCache, sha256_file
from models.resolver import models_cache_dir, present_root, search_roots
from pipeline.errors import ModelError

EXIT_MODEL = ModelError.exit_code


def _entries(names: Sequence[str] | None) -> list[ModelEntry]:
    catalog = load_catalog()
    if not names or list(names) == ["all"]:
        return list(catalog.models)
    return [catalog.get(n) for n in names]


def model_status(entry: ModelEntry, roots: Sequence[Path] | None = None) -> dict[str, Any]:
    """Presence of each format: {'name', 'task', 'backends', 'status', 'formats': {id: root|None}}."""
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


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-hash every present file of the named (default: all) models; 4 when one does not match."""
    try:
        entries = _entries(getattr(args, "names", None))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    roots, cache, bad, checked = search_roots(), DigestCache(), 0, 0
    for entry in entries:
        seen: set[str] = set()
        for fmt in entry.formats:
            for spec in fmt.files:
                if spec.path in seen:
                    continue
                seen.add(spec.path)
                for root in roots:
                    path = root / spec.path
                    if not path.is_file():
                        continue
                    actual = sha256_file(path)  # always re-read: this is the explicit check
                    checked += 1
                    if actual == spec.sha256 and path.stat().st_size == spec.bytes:
                        cache.digest(path)  # refresh the cache entry
                        print(f"ok       {entry.name}: {path}")
                    else:
                        bad += 1
                        print(
                            f"CORRUPT  {entry.name}: {path} (sha256 {actual[:12]}…, expected {(spec.sha256 or '')[:12]}…); "
                            f"delete it and run: vigil models fetch {entry.name}"
                        )
    print(f"{checked} file(s) checked, {bad} corrupt")
    return EXIT_MODEL if bad else 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download the named models (or 'all') into the cache, verified; 4 when one cannot be had."""
    from models.fetch import fetch

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


def cmd_bench_models(args: argparse.Namespace) -> int:
    """`vigil bench models`: the table of models.bench, optionally saved as JSON."""
    from models.bench import format_model_bench, run_model_bench

    backends = [args.backend] if getattr(args, "backend", None) else None
    rows = run_model_bench(
        getattr(args, "names", None) or None,
        float(getattr(args, "seconds", 2.0)),
        threads=getattr(args, "threads", None),
        backends=backends,
    )
    print(format_model_bench(rows))
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def add_models_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Register `models list|verify|fetch` on a top-level `add_subparsers()` object."""
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


def add_bench_models_command(bench_subparsers: Any) -> argparse.ArgumentParser:
    """Register `models` under an existing `vigil bench` subparsers object."""
    mo = bench_subparsers.add_parser(
        "models", help="load time, latency p50 and throughput per model x backend x device"
    )
    mo.add_argument("names", nargs="*", help="only these models (default: every model present)")
    mo.add_argument(
        "--seconds", type=float, default=2.0, help="time per row, half latency half throughput (default 2)"
    )
    mo.add_argument(
        "--threads", type=int, default=None, help="CPU threads per model (default: runtime's choice)"
    )
    mo.add_argument("--backend", choices=["openvino", "tensorflow", "opencv"], help="only this backend")
    mo.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    mo.set_defaults(func=cmd_bench_models)
    return mo


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry: `python -m models.cli models list`, `python -m models.cli bench models`."""
    parser = argparse.ArgumentParser(prog="python -m models.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    add_models_commands(sub)
    bench = sub.add_parser("bench", help="benchmarks")
    add_bench_models_command(bench.add_subparsers(dest="bench_command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MODEL


if __name__ == "__main__":
    sys.exit(main())
