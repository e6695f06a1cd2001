"""`vigil run`, `vigil validate` and `vigil stages`: a pipeline file from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig


def load_pipeline(args: argparse.Namespace) -> PipelineConfig:
    """The config file with `--set` overrides applied and `--source` replacing its sources."""
    from pipeline.config import load_config, with_sources

    config = load_config(args.config, getattr(args, "set", None) or ())
    if getattr(args, "source", None):
        config = with_sources(config, args.source)
    return config


def _print_summary(summary: dict[str, Any], output: str, quiet: bool) -> None:
    from pipeline.metrics import format_table

    if not quiet:
        print(format_table(summary["stages"]), file=sys.stderr)
        for m in summary.get("models", []):
            print(
                f"model {m.get('model')}: backend {m.get('backend')}, device {m.get('device')}, "
                f"precision {m.get('precision')}",
                file=sys.stderr,
            )
    line = (
        f"{summary['status']}: {summary['frames']} frames in {summary['duration_s']:.1f}s "
        f"({summary['fps'] or 0:.1f} fps) -> {output}"
    )
    if summary.get("error"):
        line += f"\nerror: {summary['error']}"
    print(line, file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the pipeline until its sources end; the exit code is the run's."""
    from pipeline.errors import OutputError
    from pipeline.outputs import write_atomic
    from pipeline.runner import Runner

    config = load_pipeline(args)
    summary_path = Path(args.output) / "summary.json"
    if summary_path.is_file():  # a run owns its summary: never leave an old one beside new results
        summary_path.unlink()
    result = Runner(config, output_dir=args.output, quiet=args.quiet).run()
    summary = result.summary
    _print_summary(summary, args.output, args.quiet)
    text = json.dumps(summary, indent=2)
    try:
        if args.summary:
            Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(Path(args.summary), text)
        write_atomic(summary_path, text)
    except (OutputError, OSError) as exc:  # the run's own line is out already; this one says why
        print(f"error: {exc}", file=sys.stderr)
        return result.exit_code or OutputError.exit_code
    return result.exit_code


def cmd_validate(args: argparse.Namespace) -> int:
    """Load and check the file (and overrides) without running it."""
    config = load_pipeline(args)
    print(
        f"{args.config}: ok ({len(config.sources)} source(s), {len(config.stages)} stage(s): "
        f"{' -> '.join(s.id for s in config.stages)})"
    )
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    """Every stage kind in one line each, or one kind in full."""
    from pipeline.docs import describe_kind, list_kinds

    print(describe_kind(args.kind) if args.kind else list_kinds(include_debug=args.all))
    return 0


def add_config_options(p: argparse.ArgumentParser) -> None:
    """CONFIG, --source and --set: what `load_pipeline` reads."""
    p.add_argument("config", help="pipeline YAML file (see configs/)")
    p.add_argument(
        "--source",
        action="append",
        metavar="PATH|URL|INDEX",
        help="replace the config's source (repeat for several cameras)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="override a config value, e.g. stages.faces.with.min_neighbors=6",
    )


def _add_quiet(p: argparse.ArgumentParser) -> None:
    # Also accepted after the verb (`vigil run CFG -q`); SUPPRESS keeps `vigil -q run CFG` working.
    p.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="same as vigil -q")


def add_commands(sub: Any) -> None:
    """Register run, validate and stages on the top-level subparsers."""
    run = sub.add_parser(
        "run", help="run a pipeline", description="Run a pipeline on its sources (or --source)."
    )
    add_config_options(run)
    _add_quiet(run)
    run.add_argument(
        "--output",
        "-o",
        default="out",
        metavar="DIR",
        help="where file sinks write (annotated.mp4, results.jsonl, summary.json); default: out",
    )
    run.add_argument("--summary", metavar="FILE", help="also write the run summary JSON here")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check a pipeline file without running it")
    add_config_options(val)
    _add_quiet(val)
    val.set_defaults(func=cmd_validate)

    st = sub.add_parser(
        "stages",
        help="list stage kinds and their options",
        description="Every stage kind with a one-line summary, or one KIND with its options in full.",
    )
    st.add_argument("kind", nargs="?", help="show one kind in full")
    st.add_argument("--all", action="store_true", help="also list debug.* kinds (for tests)")
    st.set_defaults(func=cmd_stages)
