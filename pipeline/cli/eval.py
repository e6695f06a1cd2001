"""`vigil eval detect|track`: score detections (COCO AP) or tracks (MOTA, IDF1, HOTA)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def write_json(args: argparse.Namespace, data: Any) -> None:
    """Also write `data` to the `--json FILE` the user asked for, if any."""
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(data, indent=2))


def cmd_detect(args: argparse.Namespace) -> int:
    """COCO-style AP/mAP of --pred against --gt."""
    from pipeline.evaluation.detection import evaluate_paths

    report = evaluate_paths(args.gt, args.pred)
    print(report.format())
    write_json(args, report.to_dict())
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    """MOT metrics of --pred against --gt."""
    from pipeline.evaluation.mot import evaluate_paths

    report = evaluate_paths(args.gt, args.pred, iou_threshold=args.iou)
    print(report.format())
    write_json(args, report.to_dict())
    return 0


def add_commands(sub: Any) -> None:
    """Register `eval detect|track` on the top-level subparsers."""
    p = sub.add_parser("eval", help="score detections (COCO mAP) or tracks (MOTA, IDF1)")
    esub = p.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    de = esub.add_parser("detect", help="COCO-style AP/mAP from COCO JSON or vigil JSONL")
    de.add_argument("--gt", required=True, help="ground truth: COCO json or vigil JSONL")
    de.add_argument("--pred", required=True, help="predictions: COCO results json or vigil JSONL")
    de.set_defaults(func=cmd_detect)
    tr = esub.add_parser("track", help="MOTA, MOTP, IDF1, ID switches from MOTChallenge txt or vigil JSONL")
    tr.add_argument("--gt", required=True, help="ground truth: MOTChallenge txt or vigil JSONL")
    tr.add_argument("--pred", required=True, help="tracker output: MOTChallenge txt or vigil JSONL")
    tr.add_argument("--iou", type=float, default=0.5, help="match threshold (default 0.5)")
    tr.set_defaults(func=cmd_track)
    for q in (de, tr):
        q.add_argument("--json", metavar="FILE", help="also write the report as JSON")
