"""CLI verbs beyond run/validate/stages: models, bench, eval (their work lives in their modules)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_models(sub: Any) -> None:
    from models.cli import add_models_commands

    add_models_commands(sub)


def add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks that print ratios measured in one run")
    bsub = p.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    tr = bsub.add_parser("transport", help="cost per frame of each link kind vs queue.Queue and memcpy")
    tr.add_argument("--size", default="1920x1080", help="frame size WxH (default 1920x1080)")
    tr.add_argument("--frames", type=int, default=300, help="frames per measurement")
    tr.set_defaults(func=_bench_transport)
    pl = bsub.add_parser("pipeline", help="pipeline fps vs a plain sequential loop on the same input")
    pl.add_argument("config")
    pl.add_argument("--source", action="append", metavar="PATH|URL|INDEX")
    pl.add_argument("--set", action="append", metavar="PATH=VALUE")
    pl.add_argument("--max-frames", type=int, default=None, help="limit the input")
    pl.set_defaults(func=_bench_pipeline)
    from models.cli import add_bench_models_command

    add_bench_models_command(bsub)
    tk = bsub.add_parser("trackers", help="tracker cost per frame at 10, 100, 1000 objects")
    tk.set_defaults(func=_bench_trackers)
    for q in (tr, pl, tk):
        q.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def _dump(args: argparse.Namespace, rows: Any) -> None:
    if getattr(args, "json", None):
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


def _bench_transport(args: argparse.Namespace) -> int:
    from pipeline.bench import format_rows, transport_bench

    w, h = (int(x) for x in args.size.lower().split("x"))
    rows = transport_bench((w, h), args.frames)
    print(format_rows(rows))
    _dump(args, rows)
    return 0


def _bench_pipeline(args: argparse.Namespace) -> int:
    from pipeline.bench import format_rows, pipeline_bench
    from pipeline.cli import _load

    rows = pipeline_bench(_load(args), args.max_frames)
    print(format_rows(rows))
    _dump(args, rows)
    return 0


def _bench_trackers(args: argparse.Namespace) -> int:
    from stages.tracking.bench import format_tracker_bench, run_tracker_bench

    rows = run_tracker_bench()
    print(format_tracker_bench(rows))
    _dump(args, rows)
    return 0


def add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="score detections (COCO mAP) or tracks (MOTA, IDF1)")
    esub = p.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    de = esub.add_parser("detect", help="COCO-style AP/mAP from COCO JSON or vigil JSONL")
    de.add_argument("--gt", required=True, help="ground truth: COCO json or vigil JSONL")
    de.add_argument("--pred", required=True, help="predictions: COCO results json or vigil JSONL")
    de.set_defaults(func=_eval_detect)
    tr = esub.add_parser("track", help="MOTA, MOTP, IDF1, ID switches from MOTChallenge txt or vigil JSONL")
    tr.add_argument("--gt", required=True)
    tr.add_argument("--pred", required=True)
    tr.add_argument("--iou", type=float, default=0.5, help="match threshold (default 0.5)")
    tr.set_defaults(func=_eval_track)
    for q in (de, tr):
        q.add_argument("--json", metavar="FILE", help="also write the report as JSON")


def _eval_detect(args: argparse.Namespace) -> int:
    from pipeline.evaluation.detection import evaluate_paths

    report = evaluate_paths(args.gt, args.pred)
    print(report.format() if hasattr(report, "format") else json.dumps(report.to_dict(), indent=2))
    _dump(args, report.to_dict())
    return 0


def _eval_track(args: argparse.Namespace) -> int:
    from pipeline.evaluation.mot import evaluate_paths

    report = evaluate_paths(args.gt, args.pred, iou_threshold=args.iou)
    print(report.format() if hasattr(report, "format") else json.dumps(report.to_dict(), indent=2))
    _dump(args, report.to_dict())
    return 0
