"""`vigil` command line: run, validate, stages, models, bench, eval, train (and serve, batch, keys).

Each command group lives in its own module (`run`, `models`, `bench`, `eval`) and registers
its verbs with an `add_commands(subparsers)` function; this module builds the parser and turns
outcomes into exit codes. Exit codes: 0 success; 1 other error; 2 bad config or usage; 3 source;
4 model; 5 a stage failed; 6 the run stalled; 7 an output could not be written; 130 stopped by a
signal. Errors are one line (no traceback) unless --debug.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import sys
from collections.abc import Sequence

from pipeline.cli import batch, bench, keys, models, run, train
from pipeline.cli import eval as evaluate
from pipeline.errors import VigilError
from pipeline.installation import version
from pipeline.service import command as serve  # light: the service stack loads when `serve` runs

log = logging.getLogger("vigil")


def _setup_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    for noisy in ("h5py", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    """The `vigil` parser with every command group registered."""
    parser = argparse.ArgumentParser(prog="vigil", description="Real-time video analytics pipelines.")
    parser.add_argument("--version", action="version", version=f"vigil {version()}")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, warnings only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (run, batch, models, bench, evaluate, keys, serve, train):
        group.add_commands(sub)
    return parser


def _stdout_reader_gone() -> bool:
    """True when the reader of our stdout has gone (`vigil stages | head`), so a BrokenPipeError
    is about stdout and not about a pipe inside the run (a worker process)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a non-file stream (tests)
        return False
    if not hasattr(select, "poll"):  # Windows: trust the error, as Python's own recipe does
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _silence_stdout() -> None:
    # Python docs, "Note on SIGPIPE": point stdout at devnull so the flush at exit cannot fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _dispatch(args: argparse.Namespace) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the command, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.debug, args.quiet)
    try:
        code = _dispatch(args)
        sys.stdout.flush()
        return code
    except Exception as exc:  # a bug, or the reader of our stdout went away
        if isinstance(exc, BrokenPipeError) and _stdout_reader_gone():
            # The reader stopped reading (`| head`): not a failure of the command.
            _silence_stdout()
            return 0
        if args.debug:
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def entry(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: `vigil ...`."""
    sys.exit(main(argv))
