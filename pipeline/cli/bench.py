"""`vigil bench transport|pipeline|models|trackers|classify|capacity|events|soak|serve|batch`: the benchmarks in
`benchmarks/`.

Each verb parses its options, calls the benchmark module's `run(...)`, prints its table and,
with `--json FILE`, writes the rows. The benchmark modules are imported only when asked for.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cli.eval import write_json
from pipeline.cli.run import add_config_options, load_pipeline
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    return w, h


def _config_with_sources(args: argparse.Namespace) -> PipelineConfig:
    """The pipeline to measure; a benchmark needs an input."""
    config = load_pipeline(args)
    if not config.sources:
        raise ConfigError(f"{args.config}: no sources to measure on; pass --source")
    return config


def cmd_transport(args: argparse.Namespace) -> int:
    """Link cost per frame vs queue.Queue."""
    from benchmarks import transport
    from benchmarks.table import format_table

    rows = transport.run(args.size, args.frames)
    print(format_table(rows))
    write_json(args, rows)
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Pipeline fps vs a sequential loop."""
    from benchmarks import pipeline
    from benchmarks.table import format_table

    config = _config_with_sources(args)
    rows = pipeline.run(config, args.max_frames, args.rounds, args.without or ())
    print(format_table(rows))  # the columns of the loop's row: the pipeline's "stages" split comes below
    breakdown = pipeline.stage_breakdown(rows[1])
    if breakdown:
        print("\nthe pipeline's CPU a frame by thread (its cheapest round):")
        print(format_table(breakdown))
    write_json(args, rows)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Latency and throughput per model x backend x device, beside TensorFlow."""
    from benchmarks import models

    backends = [args.backend] if args.backend else None
    rows = models.run(args.names or None, args.seconds, threads=args.threads, backends=backends)
    print(models.format_rows(rows))
    write_json(args, rows)
    return 0


def cmd_trackers(args: argparse.Namespace) -> int:
    """Tracker cost per frame vs track.iou."""
    from benchmarks import trackers

    rows = trackers.run(sizes=args.objects, frames=args.frames)
    print(trackers.format_rows(rows))
    write_json(args, rows)
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    """Batched vs per-face classification."""
    from benchmarks import classify

    rows = classify.run(args.faces, args.rounds, not args.no_tensorflow, args.threads)
    print(f"classification per frame, {args.threads} threads, median of {args.rounds} interleaved rounds")
    print(classify.format_rows(rows))
    write_json(args, rows)
    return 0


def cmd_capacity(args: argparse.Namespace) -> int:
    """Real-time cameras sustained, gated vs not gated."""
    from benchmarks import capacity

    config = _config_with_sources(args)
    rows = capacity.run(config, args.fps, args.seconds, args.max_cameras, args.lockstep)
    note = f"{args.seconds:g} s a trial" if args.seconds else "the whole source a trial"
    print(capacity.format_rows(rows, args.fps, note))
    write_json(args, rows)
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    """Events/s through sink.mqtt, and the cost of the event sinks on pipeline fps."""
    from benchmarks import events
    from benchmarks.table import format_table

    config = load_pipeline(args) if args.config else None
    rows = events.run(config, args.events, args.rounds, args.port, args.max_frames)
    print(format_table([r for r in rows if "events_per_s" in r]))
    if config is not None:
        print()
        print(format_table([r for r in rows if "fps" in r]))
    write_json(args, rows)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    """vigil batch vs a shell loop of vigil run, in files per second."""
    from pathlib import Path

    from benchmarks import batch
    from benchmarks.table import format_table

    rows = batch.run(Path(args.config), Path(args.clip), args.files, not args.no_ray, args.rounds)
    print(format_table(rows))
    write_json(args, rows)
    return 0


def _add_capacity(bsub: Any) -> argparse.ArgumentParser:
    ca = bsub.add_parser(
        "capacity",
        help="how many real-time copies of the source run with no drops and p99 latency under one "
        "frame interval, with gating and without",
    )
    add_config_options(ca)
    ca.add_argument("--fps", type=float, default=10.0, help="camera frame rate (default 10)")
    ca.add_argument(
        "--seconds", type=float, default=None, help="length of each trial (default: the whole source)"
    )
    ca.add_argument("--max-cameras", type=int, default=64, help="stop raising the count here (default 64)")
    ca.add_argument(
        "--lockstep",
        action="store_true",
        help="start every copy at the beginning of the file, all on the same frame at once (the worst "
        "case for gating); default: camera i of N starts i/N into the file, like unsynchronised cameras",
    )
    ca.set_defaults(func=cmd_capacity)
    return ca


def _add_events(bsub: Any) -> argparse.ArgumentParser:
    ev = bsub.add_parser(
        "events", help="events/s through sink.mqtt; pipeline fps with event sinks vs without"
    )
    ev.add_argument("config", nargs="?", help="pipeline YAML to measure fps on (default: throughput only)")
    ev.add_argument("--source", action="append", metavar="PATH|URL|INDEX", help="replace the config's source")
    ev.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a config value")
    ev.add_argument(
        "--events", type=int, default=20000, help="events sent per throughput row (default 20000)"
    )
    ev.add_argument(
        "--rounds", type=int, default=2, help="interleaved pipeline rounds, best kept (default 3)"
    )
    ev.add_argument("--port", type=int, help="a running broker on 127.0.0.1 (default: start mosquitto)")
    ev.add_argument("--max-frames", type=int, default=None, help="limit the input")
    ev.set_defaults(func=cmd_events)
    return ev


def _add_batch(bsub: Any) -> argparse.ArgumentParser:
    ba = bsub.add_parser("batch", help="vigil batch (local, Ray 1 and 2 nodes) vs a shell loop of vigil run")
    ba.add_argument("config", help="pipeline YAML file")
    ba.add_argument("clip", help="a video file; the batch runs on copies of it")
    ba.add_argument("--files", type=int, default=8, help="copies of the clip (default 8)")
    ba.add_argument("--no-ray", action="store_true", help="skip the Ray rows")
    ba.add_argument("--rounds", type=int, default=1, help="interleaved rounds, best kept (default 1)")
    ba.set_defaults(func=cmd_batch)
    return ba


def _add_models(bsub: Any) -> argparse.ArgumentParser:
    mo = bsub.add_parser("models", help="load time, latency p50 and throughput per model x backend x device")
    mo.add_argument("names", nargs="*", help="only these models (default: every model present)")
    mo.add_argument(
        "--seconds", type=float, default=2.0, help="time per row, half latency half throughput (default 2)"
    )
    mo.add_argument(
        "--threads", type=int, default=None, help="CPU threads per model (default: runtime's choice)"
    )
    mo.add_argument("--backend", choices=["openvino", "tensorflow", "opencv"], help="only this backend")
    mo.set_defaults(func=cmd_models)
    return mo


def _add_classify(bsub: Any) -> argparse.ArgumentParser:
    cl = bsub.add_parser("classify", help="batched vs per-face classification at 1, 4, 16 faces a frame")
    cl.add_argument("--faces", type=int, nargs="+", default=[1, 4, 16], help="faces per frame")
    cl.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds (median reported)")
    cl.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="inference threads per model")
    cl.add_argument("--no-tensorflow", action="store_true", help="skip the TensorFlow/LiteRT rows")
    cl.set_defaults(func=cmd_classify)
    return cl


def cmd_soak(args: argparse.Namespace) -> int:
    """A long looped run: memory, threads, fds and latency per interval, and their growth."""
    from dataclasses import asdict

    from benchmarks import soak

    config = load_pipeline(args)
    samples = soak.run(config, args.source_file, args.minutes, args.interval, Path(args.output))
    growth = soak.growth(samples)
    print("growth (last / first after warm-up): " + ", ".join(f"{k} {v}" for k, v in growth.items()))
    write_json(args, {"samples": [asdict(s) for s in samples], "growth": growth})
    return 0


def _add_soak(bsub: Any) -> argparse.ArgumentParser:
    sk = bsub.add_parser("soak", help="a long looped run: RSS, threads, fds and p99 latency per interval")
    sk.add_argument("config", help="pipeline YAML file")
    sk.add_argument("--source", dest="source_file", required=True, metavar="FILE", help="the file to loop")
    sk.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a config value")
    sk.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    sk.add_argument("--interval", type=float, default=60.0, help="seconds between samples (default 60)")
    sk.add_argument("--output", default="out/bench_soak", help="output folder of the run")
    sk.set_defaults(func=cmd_soak)
    return sk


def _serve_options(p: argparse.ArgumentParser) -> None:
    from benchmarks import serve

    serve.add_options(p)
    p.set_defaults(func=serve.report)


def add_commands(sub: Any) -> None:
    """Register `bench ...` on the top-level subparsers."""
    p = sub.add_parser("bench", help="benchmarks that print ratios measured in one run")
    bsub = p.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    tr = bsub.add_parser("transport", help="cost per frame of each link kind vs queue.Queue and memcpy")
    tr.add_argument("--size", type=_size, default=(1920, 1080), help="frame size WxH (default 1920x1080)")
    tr.add_argument("--frames", type=int, default=300, help="frames per measurement")
    tr.set_defaults(func=cmd_transport)
    pl = bsub.add_parser("pipeline", help="pipeline fps vs a plain sequential loop on the same input")
    add_config_options(pl)
    pl.add_argument("--max-frames", type=int, default=None, help="limit the input")
    pl.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each side's best is kept")
    pl.add_argument(
        "--without", action="append", metavar="STAGE_ID", help="drop this stage (repeatable), e.g. render"
    )
    pl.set_defaults(func=cmd_pipeline)
    tk = bsub.add_parser("trackers", help="tracker cost per frame at 10, 100, 1000 objects vs track.iou")
    tk.add_argument(
        "--objects",
        type=int,
        nargs="+",
        default=[10, 100, 1000],
        help="objects per frame (default 10 100 1000)",
    )
    tk.add_argument("--frames", type=int, default=60, help="timed frames per size (default 60)")
    tk.set_defaults(func=cmd_trackers)
    sv = bsub.add_parser("serve", help="vigil serve: per-stream fps, p99 latency, RSS; cost of live viewers")
    _serve_options(sv)
    for q in (
        tr,
        pl,
        _add_models(bsub),
        tk,
        _add_classify(bsub),
        _add_soak(bsub),
        _add_events(bsub),
        _add_capacity(bsub),
        _add_batch(bsub),
    ):
        q.add_argument("--json", metavar="FILE", help="also write the results as JSON")
