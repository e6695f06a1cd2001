"""Fit a `vigil train` model: crops -> held-apart validation -> Keras fit -> metrics -> export.

Tasks: `label` (any classes: a class-folder tree or a CSV `label` column), `emotion` (FER2013's 7
classes, from FER+ votes: soft targets by default), `gender`, `age` (regression in years) and
`age_gender` (both heads on one network). Validation is a seeded, held-apart share of the training
data in which exact pixel copies stay on one side. The learning rate follows a cosine over the run
(its epochs, or its `minutes` budget) and the weights of the best validation epoch are kept.
Rare classes: `balance: logit` (default) trains on the data as it is and then subtracts
tau x log(class prior) from the final logits, tau chosen on the validation set for the best mean
per-class recall (post-hoc logit adjustment, Menon et al. 2021); `weights` weighs each sample by its
class's inverse frequency (capped at 10x); `none` does neither.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.training.data import (
    GENDERS,
    CropRule,
    Samples,
    crop_faces,
    load_source,
    pixel_groups,
    split_groups,
)
from pipeline.errors import ConfigError

log = logging.getLogger("vigil.train")

TASKS = ("label", "emotion", "gender", "age", "age_gender")
TAUS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
MAX_WEIGHT = 10.0
AGE_MAX_WEIGHT = 4.0


@dataclass
class TrainSettings:
    """Everything one training run depends on (recorded in the model's `vigil.json`)."""

    task: str
    data: str
    output: str
    name: str
    size: int = 48
    colour: str = "gray"
    width: int = 32
    dropout: float = 0.3
    epochs: int = 40
    batch: int = 64
    learning_rate: float = 2e-3
    validation: float = 0.1
    patience: int = 8
    seed: int = 0
    targets: str = "soft"
    balance: str = "logit"
    limit: int | None = None
    minutes: float | None = None
    threads: int = 2
    detector: str = "yunet"
    margin: float = 0.0
    square: bool = True
    detect_side: int = 192
    augment: bool = True
    degrade: float = 0.0  # probability of a low-resolution batch (augment_batch)
    formats: list[str] = field(default_factory=lambda: ["keras", "openvino", "tflite"])

    def crop_rule(self) -> CropRule:
        return CropRule(
            self.detector, self.margin, self.square, self.detect_side, (self.size, self.size), self.colour
        )

    def check(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"train: task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if self.balance not in ("logit", "weights", "none"):
            raise ConfigError(f"train: balance must be logit, weights or none, not {self.balance!r}")
        if self.colour not in ("gray", "bgr", "rgb"):
            raise ConfigError(f"train: colour must be gray, bgr or rgb, not {self.colour!r}")
        if not 0 < self.validation < 0.5:
            raise ConfigError("train: validation must be a fraction between 0 and 0.5")
        if not 16 <= self.size <= 256:
            raise ConfigError("train: size must be 16..256 pixels")


@dataclass
class Prepared:
    """Crops and targets, split into training and validation."""

    x: np.ndarray  # (N, h, w, c) uint8
    heads: dict[str, int]
    y: dict[str, np.ndarray]  # per head: (N, K) probabilities, or (N,) years
    train: np.ndarray
    val: np.ndarray
    classes: tuple[str, ...]
    missed: int


def heads_of(task: str, samples: Samples) -> dict[str, int]:
    """Output heads (name -> units) a task trains; checks the data carries the labels it needs."""
    need = {"label": "targets", "emotion": "targets", "gender": "gender", "age": "age"}
    for part in ("age", "gender") if task == "age_gender" else (task,):
        if getattr(samples, need[part]) is None:
            raise ConfigError(f"train: task {task} needs {need[part]} labels, and {samples.origin} has none")
    if task in ("label", "emotion"):
        return {"class": len(samples.classes)}
    if task == "age_gender":
        return {"age": 1, "gender": 2}
    return {task: 1 if task == "age" else 2}


def subset(samples: Samples, limit: int | None, seed: int) -> Samples:
    """At most `limit` samples, drawn at random (seeded)."""
    if limit is None or limit >= len(samples):
        return samples
    pick = np.sort(np.random.default_rng(seed).choice(len(samples), size=limit, replace=False))
    return samples.take(pick)


def prepare(settings: TrainSettings, progress: Any = None) -> Prepared:
    """Load, crop and split the data of `settings`."""
    samples = subset(load_source(settings.data, settings.targets), settings.limit, settings.seed)
    if len(samples) < 20:
        raise ConfigError(f"train: {settings.data} has {len(samples)} usable images; at least 20 are needed")
    heads = heads_of(settings.task, samples)
    x, missed = crop_faces(samples, settings.crop_rule(), threads=settings.threads, progress=progress)
    y: dict[str, np.ndarray] = {}
    if "class" in heads and samples.targets is not None:
        y["class"] = samples.targets.astype(np.float32)
    if "gender" in heads and samples.gender is not None:
        y["gender"] = np.eye(2, dtype=np.float32)[samples.gender]
    if "age" in heads and samples.age is not None:
        y["age"] = samples.age.astype(np.float32)
    train, val = split_groups(pixel_groups(x), settings.validation, settings.seed)
    classes = samples.classes if "class" in heads else (GENDERS if "gender" in heads else ())
    return Prepared(x, heads, y, train, val, classes, missed)


def class_weights(targets: np.ndarray) -> np.ndarray:
    """Per-class weights N / (K x count), capped at `MAX_WEIGHT` (from soft or one-hot targets)."""
    counts = targets.sum(axis=0)
    weights = len(targets) / (len(counts) * np.maximum(counts, 1.0))
    return np.minimum(weights, MAX_WEIGHT).astype(np.float32)


def balanced_recall(truth: np.ndarray, predicted: np.ndarray, k: int) -> float:
    """Mean over classes present in `truth` of the share of their samples predicted right."""
    recalls = [float(np.mean(predicted[truth == c] == c)) for c in range(k) if np.any(truth == c)]
    return float(np.mean(recalls)) if recalls else 0.0


def choose_tau(probs: np.ndarray, truth: np.ndarray, prior: np.ndarray) -> float:
    """Logit adjustment strength with the best mean per-class recall on validation."""
    logits = np.log(np.maximum(probs, 1e-9))
    log_prior = np.log(np.maximum(prior, 1e-9))
    scores = [
        balanced_recall(truth, np.argmax(logits - tau * log_prior, axis=1), probs.shape[1]) for tau in TAUS
    ]
    return TAUS[int(np.argmax(scores))]


def class_report(truth: np.ndarray, predicted: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, mean per-class recall, per-class precision/recall/support and the confusion matrix."""
    k = len(names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = {}
    for c, name in enumerate(names):
        support = int(confusion[c].sum())
        said = int(confusion[:, c].sum())
        per_class[name] = {
            "precision": round(confusion[c, c] / said, 4) if said else None,
            "recall": round(confusion[c, c] / support, 4) if support else None,
            "support": support,
        }
    return {
        "accuracy": round(float(np.mean(truth == predicted)), 4),
        "balanced_accuracy": round(balanced_recall(truth, predicted, k), 4),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


class _Schedule:
    """Keras callback factory: cosine learning-rate decay over the run, which ends after `epochs`
    or, with `minutes`, when the next epoch would not finish in time (its length judged by the last
    one), whichever comes first; the decay follows whichever is nearer its end, so a time-capped run
    still ends at a low rate instead of being cut off at full speed."""

    @staticmethod
    def make(base: float, epochs: int, minutes: float | None) -> Any:
        import keras

        class Schedule(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.start = time.monotonic()
                self.last = 0.0  # seconds the last epoch took

            def progress(self, epoch: int) -> float:
                done = epoch / epochs
                if minutes is not None:
                    done = max(done, (time.monotonic() - self.start + self.last / 2) / (minutes * 60))
                return min(done, 1.0)

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self.began = time.monotonic()
                rate = base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * self.progress(epoch))))
                self.model.optimizer.learning_rate.assign(rate)

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                self.last = time.monotonic() - self.began
                if minutes is not None and time.monotonic() - self.start + self.last > minutes * 60:
                    log.info("time budget of %.0f min: stopping after epoch %d", minutes, epoch + 1)
                    self.model.stop_training = True

        return Schedule()


def _losses(heads: dict[str, int]) -> tuple[list[Any], list[float], list[Any]]:
    import keras

    losses, weights, metrics = [], [], []
    for head in heads:
        if head == "age":
            losses.append(keras.losses.Huber(delta=5.0))
            weights.append(0.02)  # years: Huber ~ 5 x error; x 0.02 keeps it near the gender loss
            metrics.append([keras.metrics.MeanAbsoluteError(name="mae")])
        else:
            losses.append(keras.losses.CategoricalCrossentropy())
            weights.append(1.0)
            metrics.append([keras.metrics.CategoricalAccuracy(name="acc")])
    return losses, weights, metrics


def age_weights(ages: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Per-sample weights (N,) so each decade of age counts about alike: the inverse frequency of the
    sample's decade in the training part (90+ is one decade), capped at `AGE_MAX_WEIGHT`, mean 1 over
    the training part. UTKFace is mostly 20-40 year olds; unweighted, the regression pulls every
    teenager and every 70-year-old towards 30."""
    decade = np.minimum(np.asarray(ages) // 10, 9).astype(np.int64)
    counts = np.bincount(decade[train], minlength=10).astype(np.float64)
    per_decade = np.minimum(len(train) / (np.count_nonzero(counts) * np.maximum(counts, 1.0)), AGE_MAX_WEIGHT)
    weights = per_decade[decade]
    return (weights / weights[train].mean()).astype(np.float32)


def sample_weights(prep: Prepared, settings: TrainSettings) -> dict[str, np.ndarray]:
    """Per-head sample weights (N,) over all of `prep.x`: ages by decade (unless `balance: none`),
    classes by inverse frequency with `balance: weights`; heads without any are weighted 1."""
    out = {}
    for head in prep.heads:
        y = prep.y[head]
        if head == "age":
            out[head] = (
                age_weights(y, prep.train) if settings.balance != "none" else np.ones(len(y), np.float32)
            )
        elif settings.balance == "weights":
            out[head] = class_weights(y[prep.train])[np.argmax(y, axis=1)].astype(np.float32)
        else:
            out[head] = np.ones(len(y), np.float32)
    return out


def _dataset(prep: Prepared, index: np.ndarray, settings: TrainSettings, train: bool) -> Any:
    import tensorflow as tf

    from models.training.nets import augment_batch

    heads = list(prep.heads)
    x = prep.x[index]
    ys = tuple(prep.y[h][index] for h in heads)
    parts: tuple[Any, ...] = (x, ys if len(ys) > 1 else ys[0])
    if train:
        weights = sample_weights(prep, settings)
        ws = tuple(weights[h][index] for h in heads)
        parts = (*parts, ws if len(ws) > 1 else ws[0])
    data = tf.data.Dataset.from_tensor_slices(parts)
    options = tf.data.Options()
    options.threading.private_threadpool_size = settings.threads  # inside the run's thread budget
    data = data.with_options(options)
    if train:
        data = data.shuffle(len(index), seed=settings.seed, reshuffle_each_iteration=True)
    rng = tf.random.Generator.from_seed(settings.seed)
    augment = train and settings.augment

    def scale(x: Any, *rest: Any) -> Any:
        pixels = tf.cast(x, tf.float32) / 255.0
        return (augment_batch(pixels, rng, degrade=settings.degrade) if augment else pixels, *rest)

    return data.batch(settings.batch).map(scale, num_parallel_calls=1).prefetch(2)


def set_threads(threads: int) -> None:
    """One thread budget for TensorFlow's pools (the pipeline's rule: no oversubscription)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))


def balance_logits(core: Any, prep: Prepared) -> dict[str, float]:
    """Logit adjustment of each softmax head, tau chosen on validation and baked into its bias."""
    outputs = core.predict(prep.x[prep.val].astype(np.float32) / 255.0, batch_size=256, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    taus = {}
    for head, probs in zip(prep.heads, outputs, strict=True):
        if head == "age":
            continue
        prior = prep.y[head][prep.train].mean(axis=0)
        taus[head] = choose_tau(probs, np.argmax(prep.y[head][prep.val], axis=1), prior)
        adjust_logits(core, head, taus[head], prior)
    return taus


def adjust_logits(model: Any, head: str, tau: float, prior: np.ndarray) -> None:
    """Bake the logit adjustment into a head's bias (softmax(Wx + b - tau log prior))."""
    layer = model.get_layer(head)
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias - tau * np.log(np.maximum(prior, 1e-9)).astype(bias.dtype)])


def evaluate(model: Any, prep: Prepared, settings: TrainSettings) -> dict[str, Any]:
    """Validation metrics per head (after any logit adjustment)."""
    outputs = model.predict(prep.x[prep.val].astype(np.float32) / 255.0, batch_size=256, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    report: dict[str, Any] = {"validation_images": int(len(prep.val))}
    for head, out in zip(prep.heads, outputs, strict=True):
        truth = prep.y[head][prep.val]
        if head == "age":
            report["age_mae"] = round(float(np.mean(np.abs(out.reshape(-1) - truth))), 3)
        else:
            names = prep.classes if head == "class" else GENDERS
            report[head] = class_report(np.argmax(truth, axis=1), np.argmax(out, axis=1), names)
    return report


def describe(settings: TrainSettings, prep: Prepared, summary: dict[str, Any]) -> dict[str, Any]:
    """The sidecar content of a trained model."""
    return {
        "name": settings.name,
        "task": settings.task,
        "heads": list(prep.heads),
        "labels": list(prep.classes),
        "input": {
            "size": [settings.size, settings.size],
            "colour": settings.colour,
            "scale": 1 / 255,
            "mean": 0.0,
            "std": 1.0,
            "crop_margin": settings.margin,
            "crop_square": settings.square,
            "crop_align": False,
            "detector": settings.detector,
        },
        "age_unit": "years" if "age" in prep.heads else None,
        "validation": summary.get("validation"),
        "parameters": summary.get("parameters"),
    }


def train(settings: TrainSettings, progress: Any = None) -> dict[str, Any]:
    """Run one training; returns the summary (also written as `<output>/<name>.summary.json`)."""
    settings.check()
    started = time.monotonic()
    prep = prepare(settings, progress)
    log.info(
        "%d images (%d for validation), %d without a detected face; heads %s",
        len(prep.x),
        len(prep.val),
        prep.missed,
        ", ".join(prep.heads),
    )
    import keras

    from models.training.export import export_model
    from models.training.nets import build_net, count_params

    set_threads(settings.threads)
    keras.utils.set_random_seed(settings.seed)
    core = trained = build_net(
        prep.x.shape[1:], prep.heads, width=settings.width, dropout=settings.dropout, name=settings.name
    )
    losses, loss_weights, metrics = _losses(prep.heads)
    trained.compile(
        optimizer=keras.optimizers.AdamW(settings.learning_rate, weight_decay=1e-4),
        loss=losses if len(losses) > 1 else losses[0],
        loss_weights=loss_weights if len(losses) > 1 else None,
        metrics=metrics if len(metrics) > 1 else metrics[0],
    )
    callbacks = [
        keras.callbacks.EarlyStopping(patience=settings.patience, restore_best_weights=True),
        _Schedule.make(settings.learning_rate, settings.epochs, settings.minutes),
    ]
    fit_start = time.monotonic()
    history = trained.fit(
        _dataset(prep, prep.train, settings, True),
        validation_data=_dataset(prep, prep.val, settings, False),
        epochs=settings.epochs,
        callbacks=callbacks,
        verbose=1 if progress is not None else 2,
    )
    fit_seconds = time.monotonic() - fit_start
    taus = balance_logits(core, prep) if settings.balance == "logit" else {}
    summary = {
        "name": settings.name,
        "settings": asdict(settings),
        "classes": list(prep.classes),
        "images": int(len(prep.x)),
        "faces_not_found": prep.missed,
        "parameters": count_params(core),
        "epochs_run": len(history.history.get("loss", [])),
        "logit_adjustment_tau": taus,
        "fit_seconds": round(fit_seconds, 1),
        "validation": evaluate(core, prep, settings),
    }
    sidecar = describe(settings, prep, summary)
    summary["files"] = export_model(core, settings.output, settings.name, settings.formats, sidecar)
    summary["total_seconds"] = round(time.monotonic() - started, 1)
    out = Path(settings.output) / f"{settings.name}.summary.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
