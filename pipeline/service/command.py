"""`vigil serve CONFIG`: run a pipeline as a service until stopped (SIGTERM/Ctrl-C drain)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("vigil.serve")


def add_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `serve` verb to the `vigil` command line (as every command group of pipeline.cli)."""
    p = subparsers.add_parser(
        "serve",
        help="run a pipeline as a service: HTTP API, live view, /healthz, /metrics",
        description="Run a pipeline until stopped; cameras are added and removed over HTTP.",
    )
    p.add_argument("config", help="pipeline YAML file (its sources start with the service)")
    p.add_argument("--source", action="append", metavar="PATH|URL|INDEX", help="replace the config's sources")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a config value")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a token)"
    )
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--token-file", metavar="FILE", help="file holding the bearer token")
    p.add_argument(
        "--output", "-o", default="out", metavar="DIR", help="where file sinks write (default out)"
    )
    p.add_argument(
        "--live-fps", type=float, default=10.0, help="frame rate cap of each live view (default 10)"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/Ctrl-C; returns the run's exit code."""
    try:  # the service stack is an extra: say how to get it rather than a traceback
        from pipeline.service.app import Service, create_app
        from pipeline.service.server import BackgroundServer
    except ImportError as exc:
        print(
            f"error: vigil serve needs the serve extra (pip install 'vigil-analytics[serve]'): {exc}",
            file=sys.stderr,
        )
        return 2
    from pipeline.config import load_config, with_sources
    from pipeline.runner import Runner
    from pipeline.service.auth import read_token

    token = read_token(args.token_file, args.host)  # refuses a non-loopback bind without one
    config = load_config(args.config, args.set or ())
    if args.source:
        config = with_sources(config, args.source)
    service = Service(Runner(config, args.output, quiet=True, keep_open=True), live_fps=args.live_fps)
    service.runner.on_result = service.tap
    server = BackgroundServer(create_app(service, token), args.host, args.port).start()
    log.warning("serving %s on %s (Ctrl-C to stop)", args.config, server.url)
    try:
        result = service.runner.run()
    finally:
        service.closing = True
        server.stop()
    summary = result.summary
    (Path(args.output) / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{summary['status']}: {summary['frames']} frames in {summary['duration_s']:.1f}s", file=sys.stderr)
    if summary.get("error"):
        print(f"error: {summary['error']}", file=sys.stderr)
    # A service runs until it is stopped: a drained stop (SIGTERM, Ctrl-C) is its normal end.
    return 0 if summary["status"] == "stopped" else result.exit_code
