"""`vigil eval detect|track|attributes`: score detections (COCO AP), tracks (MOTA, IDF1, HOTA) or face
attributes (gender accuracy, age error, emotion accuracy) on labelled images."""

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
    from pipeline.evaluation.detection_io import evaluate_paths

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


def cmd_attributes(args: argparse.Namespace) -> int:
    """Run --config on the labelled --images and score the attributes against --labels."""
    from pipeline.errors import ConfigError
    from pipeline.evaluation.attribute_run import run_attributes

    try:
        report = run_attributes(
            args.config, args.images, args.labels, args.set or (), face=args.face, upscale=args.upscale
        )
    except (OSError, ValueError) as exc:  # a missing or malformed labels file: a usage error (exit 2)
        raise ConfigError(f"eval attributes: {exc}") from exc
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
    at = esub.add_parser(
        "attributes",
        help="gender accuracy, age error, emotion accuracy of a pipeline on labelled face images",
        description="Runs CONFIG's detect and classify stages on every image of --images (each image on its "
        "own: trackers, render and sinks are left out), scores the face nearest the image centre (or the "
        "largest) against --labels, a CSV with `file` and any of gender, age, age_min/age_max, "
        "emotion or label. A missed face counts as a wrong gender/emotion.",
    )
    at.add_argument("--images", required=True, help="folder of the labelled images")
    at.add_argument(
        "--labels", required=True, help="labels CSV (file, gender, age, age_min, age_max, emotion|label)"
    )
    at.add_argument("--config", required=True, help="pipeline file whose detect/classify stages run")
    at.add_argument(
        "--set", action="append", metavar="PATH=VALUE", help="override a config value (as vigil run)"
    )
    at.add_argument(
        "--face", choices=["centre", "largest"], default="centre", help="which face of an image is scored"
    )
    at.add_argument(
        "--upscale",
        type=float,
        default=1.0,
        help="resize images by this factor first (bicubic; 4 for FER2013's 48x48)",
    )
    at.set_defaults(func=cmd_attributes)
    for q in (de, tr, at):
        q.add_argument("--json", metavar="FILE", help="also write the report as JSON")
