"""`vigil` command line: run, validate, stages, models, bench, eval.

Exit codes: 0 success; 1 other error; 2 bad config or usage; 3 source; 4 model; 5 a stage
failed; 6 the run stalled; 130 stopped by a signal. Errors are one line (no traceback)
unless --debug.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import VigilError

log = logging.getLogger("vigil")


def _setup_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    for noisy in ("h5py", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(args: argparse.Namespace):  # -> PipelineConfig
    from pipeline.config import SourceConfig, load_config

    config = load_config(args.config, getattr(args, "set", None) or ())
    if getattr(args, "source", None):
        first = config.sources[0] if config.sources else None
        keep = first.model_dump(exclude={"uri", "id"}) if first else {}
        ids = [s.strip() for s in args.source]
        config.sources = [
            SourceConfig(id=(first.id if first and len(ids) == 1 else f"cam{i}"), uri=uri, **keep)
            for i, uri in enumerate(ids)
        ]
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.metrics import format_table
    from pipeline.runner import Runner

    config = _load(args)
    result = Runner(config, output_dir=args.output, quiet=args.quiet).run()
    summary = result.summary
    if args.summary:
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(json.dumps(summary, indent=2))
    default_summary = Path(args.output) / "summary.json"
    default_summary.write_text(json.dumps(summary, indent=2))
    if not args.quiet:
        print(format_table(summary["stages"]), file=sys.stderr)
        for m in summary.get("models", []):
            print(
                f"model {m.get('model')}: backend {m.get('backend')}, device {m.get('device')}, "
                f"precision {m.get('precision')}",
                file=sys.stderr,
            )
    line = (
        f"{summary['status']}: {summary['frames']} frames in {summary['duration_s']:.1f}s "
        f"({summary['fps'] or 0:.1f} fps) -> {args.output}"
    )
    if summary.get("error"):
        line += f"\nerror: {summary['error']}"
    print(line, file=sys.stderr)
    return result.exit_code


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load(args)
    print(
        f"{args.config}: ok ({len(config.sources)} source(s), {len(config.stages)} stage(s): "
        f"{' -> '.join(s.id for s in config.stages)})"
    )
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    from pipeline.docs import describe_kind, list_kinds

    print(describe_kind(args.kind) if args.kind else list_kinds())
    return 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
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
    # Also accepted after the verb (`vigil run CFG -q`); SUPPRESS keeps `vigil -q run CFG` working.
    p.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="same as vigil -q")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigil", description="Real-time video analytics pipelines.")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, warnings only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run a pipeline", description="Run a pipeline on its sources (or --source)."
    )
    _add_run_options(run)
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
    _add_run_options(val)
    val.set_defaults(func=cmd_validate)

    st = sub.add_parser("stages", help="list stage kinds and their options")
    st.add_argument("kind", nargs="?", help="show one kind in full")
    st.set_defaults(func=cmd_stages)

    from pipeline.cli_extra import add_bench, add_eval, add_models

    add_models(sub)
    add_bench(sub)
    add_eval(sub)
    from pipeline.service.command import add_parser as add_serve  # light: the stack loads on `serve`

    add_serve(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.debug, args.quiet)
    try:
        return int(args.func(args) or 0)
    except VigilError as exc:
        if args.debug:
            log.exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so plainly, trace with --debug
        if args.debug:
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def entry(argv: Any = None) -> None:
    sys.exit(main(argv))
