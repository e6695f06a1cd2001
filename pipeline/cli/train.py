"""`vigil train classifier`: fit a compact Keras classifier (emotion, gender, age, age + gender, or
your own classes) on labelled images, export it as .keras, OpenVINO IR and TF Lite with its crop and
normalisation recorded beside it (`<name>.vigil.json`), and print validation metrics per class.

Needs the `tensorflow` extra (Keras 3). Full recipes for the shipped models: README, "Training".
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.errors import ConfigError

TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    # FER2013-style 48x48 grey faces; the eval images are upscaled x4 before detection
    "emotion": {"size": 48, "colour": "gray", "margin": 0.1, "detect_side": 192},
    # colour faces for age and gender (UTKFace chips are 200x200 in the eval set)
    # (degrade: half the batches softened, as faces from cameras are; UTKFace chips are sharp)
    "age_gender": {"size": 64, "colour": "bgr", "margin": 0.1, "detect_side": 200, "degrade": 0.5},
    "age": {"size": 64, "colour": "bgr", "margin": 0.1, "detect_side": 200, "degrade": 0.5},
    "gender": {"size": 64, "colour": "bgr", "margin": 0.1, "detect_side": 200, "degrade": 0.5},
    "label": {"size": 64, "colour": "bgr", "margin": 0.0, "detect_side": 192, "detector": "none"},
}


def _format_summary(summary: dict[str, Any]) -> str:
    val = summary["validation"]
    lines = [
        f"{summary['name']}: {summary['images']} images ({val['validation_images']} held apart for "
        f"validation), {summary['parameters']:,} weights, {summary['epochs_run']} epochs in "
        f"{summary['fit_seconds'] / 60:.1f} min; faces not found: {summary['faces_not_found']}",
    ]
    if "age_mae" in val:
        lines.append(f"  age MAE (validation): {val['age_mae']:.2f} years")
    for head in ("class", "gender"):
        report = val.get(head)
        if not report:
            continue
        lines.append(
            f"  {head}: accuracy {report['accuracy']:.3f}, mean per-class recall {report['balanced_accuracy']:.3f}"
            + (
                f" (logit adjustment tau {summary['logit_adjustment_tau'][head]})"
                if head in summary["logit_adjustment_tau"]
                else ""
            )
        )
        lines.append(f"    {'class':<12} {'precision':>9} {'recall':>7} {'support':>8}")
        for name, m in report["per_class"].items():
            p = "-" if m["precision"] is None else f"{m['precision']:.3f}"
            r = "-" if m["recall"] is None else f"{m['recall']:.3f}"
            lines.append(f"    {name:<12} {p:>9} {r:>7} {m['support']:>8}")
    lines.append(f"  wrote {', '.join(summary['files'])} to {summary['settings']['output']}")
    return "\n".join(lines)


def cmd_classifier(args: argparse.Namespace) -> int:
    """Train, export and report one classifier."""
    try:
        import keras  # noqa: F401  (the extra is needed: say so before reading any data)
    except ImportError:
        raise ConfigError(
            "train: needs TensorFlow/Keras: pip install 'vigil-analytics[tensorflow]'"
        ) from None
    from models.training.fit import TrainSettings, train

    defaults = TASK_DEFAULTS[args.task]
    settings = TrainSettings(
        task=args.task,
        data=args.data,
        output=args.output,
        name=args.name or f"vigil_{args.task}",
        size=args.size or defaults["size"],
        colour=args.colour or defaults["colour"],
        width=args.width,
        epochs=args.epochs,
        batch=args.batch,
        learning_rate=args.lr,
        validation=args.validation,
        patience=args.patience,
        seed=args.seed,
        targets=args.targets,
        balance=args.balance,
        limit=args.limit,
        minutes=args.minutes,
        threads=args.threads,
        detector=args.detector or defaults.get("detector", "yunet"),
        margin=defaults["margin"] if args.margin is None else args.margin,
        square=not args.no_square,
        detect_side=args.detect_side or defaults["detect_side"],
        augment=not args.no_augment,
        degrade=defaults.get("degrade", 0.0) if args.degrade is None else args.degrade,
        formats=args.formats.split(","),
    )
    progress = _crop_progress() if sys.stderr.isatty() and not args.quiet else None
    summary = train(settings, progress)
    print(_format_summary(summary))
    return 0


def _crop_progress() -> Any:
    from tqdm import tqdm

    bar = tqdm(desc="cropping faces", unit=" img", leave=False)

    def update(done: int) -> None:
        bar.update(done - bar.n)

    return update


def add_commands(sub: Any) -> None:
    """Register `train classifier` on the top-level subparsers."""
    p = sub.add_parser("train", help="train a compact face-attribute (or your own) classifier")
    tsub = p.add_subparsers(dest="train_command", required=True, metavar="WHAT")
    c = tsub.add_parser(
        "classifier",
        help="fit a small CNN on labelled images; export .keras, OpenVINO IR and TF Lite",
        description=__doc__,
    )
    c.add_argument(
        "--task",
        required=True,
        choices=sorted(TASK_DEFAULTS),
        help="emotion (FER2013's 7 classes; FER+ votes as soft targets), gender, age (years), "
        "age_gender (one net, two heads) or label (your own classes)",
    )
    c.add_argument(
        "--data",
        required=True,
        help="a folder with a subfolder per class, a CSV (file + label | age | gender), or a packed set "
        "(../shared/datasets/ferplus_train, ../shared/datasets/utkface_train)",
    )
    c.add_argument("--output", required=True, help="folder for the exported model files")
    c.add_argument("--name", help="file name stem (default: vigil_<task>)")
    c.add_argument("--size", type=int, help="input side in pixels (default: 48 emotion, 64 others)")
    c.add_argument(
        "--colour", choices=["gray", "bgr", "rgb"], help="input colour (default: gray emotion, bgr others)"
    )
    c.add_argument(
        "--width", type=int, default=32, help="filters of the first conv stage (doubles per stage)"
    )
    c.add_argument("--epochs", type=int, default=40, help="most epochs (early stopping ends sooner)")
    c.add_argument("--batch", type=int, default=64)
    c.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate at the start (cosine decay)")
    c.add_argument("--validation", type=float, default=0.1, help="share of the data held apart")
    c.add_argument("--patience", type=int, default=8, help="epochs without validation gain before stopping")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument(
        "--targets", choices=["soft", "majority"], default="soft", help="FER+ votes: shares or majority"
    )
    c.add_argument(
        "--balance",
        choices=["logit", "weights", "none"],
        default="logit",
        help="rare classes: logit adjustment tuned on validation, inverse-frequency weights, or none",
    )
    c.add_argument("--limit", type=int, help="use at most this many images (quick runs)")
    c.add_argument(
        "--minutes", type=float, help="time budget: the learning rate decays to end within it (cosine)"
    )
    c.add_argument("--threads", type=int, default=2, help="TensorFlow and detector threads")
    c.add_argument("--detector", help="face detector for the crops (catalog name) or none (default: yunet)")
    c.add_argument("--margin", type=float, help="box margin on each side (default: 0.1 faces, 0 label)")
    c.add_argument("--no-square", action="store_true", help="do not make the box square before the margin")
    c.add_argument("--detect-side", type=int, help="enlarge smaller images to this side before detecting")
    c.add_argument("--no-augment", action="store_true", help="no flips/shifts/turns/brightness")
    c.add_argument(
        "--degrade",
        type=float,
        help="share of batches softened to 30-100 %% resolution (default: 0.5 age/gender, 0 others)",
    )
    c.add_argument("--formats", default="keras,openvino,tflite", help="comma list of keras, openvino, tflite")
    c.set_defaults(func=cmd_classifier)
