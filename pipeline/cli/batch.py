"""`vigil batch CONFIG INPUTS... --output DIR`: one pipeline run per recorded file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_batch(args: argparse.Namespace) -> int:
    """Run the batch; exit 0 when every file completed (or was complete already)."""
    from pipeline.batch import BatchOptions, run_batch
    from pipeline.config import load_config

    config = load_config(args.config, args.set or ())
    options = BatchOptions(
        Path(args.output), args.workers, args.ray, args.resume, args.retries, quiet=args.quiet
    )
    report = run_batch(config, args.inputs, options)
    s = report.summary
    line = (
        f"{s['completed']} completed, {s['skipped']} skipped, {s['failed']} failed, {s['stopped']} stopped, "
        f"{s['pending']} not run: {s['frames']} frames in {s['seconds']:.1f}s "
        f"({s['fps'] or 0:.1f} frames/s) -> {Path(args.output) / 'batch.json'}"
    )
    print(line, file=sys.stderr)
    for row in report.rows:
        if row.status not in ("completed", "skipped", "pending"):
            print(f"{row.status}: {row.input}: {row.error or ''}", file=sys.stderr)
    return report.exit_code


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def add_commands(sub: Any) -> None:
    """Register `batch` on the top-level subparsers."""
    p = sub.add_parser(
        "batch",
        help="run a pipeline on many recorded files (local processes or a Ray cluster)",
        description="One pipeline run per file (the config's sources replaced by that file); outputs "
        "in DIR/<input path relative to its root>/, an aggregate DIR/batch.json.",
    )
    p.add_argument("config", help="pipeline YAML file (see configs/)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders (recursive) or globs")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="where every file's outputs go")
    p.add_argument(
        "--set", action="append", metavar="PATH=VALUE", help="override a config value, as in vigil run"
    )
    p.add_argument("--workers", type=_positive, help="local runs at once (default: cores / threads per run)")
    p.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        help="run each file as a Ray task on this cluster (needs the ray extra)",
    )
    p.add_argument(
        "--resume", action="store_true", help="skip files whose outputs are complete for this config"
    )
    p.add_argument(
        "--retries", type=int, default=2, help="Ray: retries of a failed file or dead worker (default 2)"
    )
    p.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="same as vigil -q")
    p.set_defaults(func=cmd_batch)
