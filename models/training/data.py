"""Training data for `vigil train`: labelled images in, face crops at the model's input size out.

Where the labels come from (`load_source`):
- a folder with one subfolder per class (the course's layout): `label` task;
- a CSV with `file` and `label`, or `age` and/or `gender` (paths relative to the CSV);
- the packed sets of ../shared/datasets: `ferplus_train/ferplus_train.npz` (48x48 grey faces with
  FER+ votes over 10 columns) and `utkface_train/` (a tar of 128x128 chips plus `labels.csv`).

How the pixels are cut (`crop_faces`): with a face detector (`detector="yunet"`, the default for
faces) every image is detected the way `vigil eval attributes` does it (small images enlarged so
their longer side is `detect_side`, bicubic), the face nearest the centre is kept and cut with the
same margin/square rule the classify stages use, so a model learns on the crops it will see in a
pipeline. Images where no face is found keep their whole frame (counted in the summary).
`detector="none"` uses whole images. Crops are cached under ~/.cache/vigil/train by content.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from models.geometry import clip_boxes, expand_boxes
from models.integrity import vigil_cache_dir
from pipeline.errors import ConfigError
from pipeline.evaluation.attributes import pick_face

log = logging.getLogger("vigil.train")

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# FER+ vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
FERPLUS_TO_FER2013 = (4, 5, 6, 1, 3, 2, 0)  # FER+ column of each FER2013 class
GENDERS = ("female", "male")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class Samples:
    """Labelled images (any size, BGR or grey uint8) before cropping.

    `targets`: (N, K) class probabilities (one-hot, or FER+ vote shares) or None;
    `age`: (N,) years or None; `gender`: (N,) 0 female / 1 male or None.
    """

    images: list[np.ndarray]
    classes: tuple[str, ...] = ()
    targets: np.ndarray | None = None
    age: np.ndarray | None = None
    gender: np.ndarray | None = None
    names: list[str] = field(default_factory=list)
    origin: str = ""

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> Samples:
        """The samples at `index` (an int array)."""
        pick = [int(i) for i in index]
        return replace(
            self,
            images=[self.images[i] for i in pick],
            targets=None if self.targets is None else self.targets[index],
            age=None if self.age is None else self.age[index],
            gender=None if self.gender is None else self.gender[index],
            names=[self.names[i] for i in pick] if self.names else [],
        )


def ferplus_targets(votes: np.ndarray, rule: str = "soft") -> tuple[np.ndarray, np.ndarray]:
    """FER+ votes (N, 10) -> (FER2013 7-class targets (N, 7), kept mask (N,)).

    Contempt, unknown and not-a-face votes are dropped (FER2013 has no such class). `soft`: the
    remaining vote shares; `majority`: one-hot of the FERPlus rule (single votes dropped, the top
    class needs more than half of the rest). Rows whose emotion votes are fewer than half of all
    votes (mostly unknown / not a face) or have no majority (rule `majority`) are dropped.
    """
    votes = np.asarray(votes, np.float32)
    emotion = votes[:, list(FERPLUS_TO_FER2013)]
    total = votes.sum(axis=1)
    kept = emotion.sum(axis=1) >= np.maximum(total / 2, 1)
    if rule == "soft":
        targets = emotion / np.maximum(emotion.sum(axis=1, keepdims=True), 1)
        return targets, kept
    if rule != "majority":
        raise ConfigError(f"train: targets must be soft or majority, not {rule!r}")
    trimmed = np.where(votes > 1, votes, 0)
    top = trimmed.argmax(axis=1)
    majority = trimmed.max(axis=1) > trimmed.sum(axis=1) / 2
    column = {c: i for i, c in enumerate(FERPLUS_TO_FER2013)}
    onehot = np.zeros((len(votes), len(FER2013_CLASSES)), np.float32)
    usable = np.array([majority[i] and int(top[i]) in column for i in range(len(votes))], bool)
    for i in np.flatnonzero(usable):
        onehot[i, column[int(top[i])]] = 1.0
    return onehot, kept & usable


def load_ferplus(path: Path, rule: str = "soft") -> Samples:
    """The FER+ training set (`ferplus_train.npz`, or its folder)."""
    npz = path / "ferplus_train.npz" if path.is_dir() else path
    with np.load(npz) as data:
        images, votes, files = data["images"], data["votes"], data["files"]
    targets, kept = ferplus_targets(votes, rule)
    index = np.flatnonzero(kept)
    log.info("FER+: %d of %d faces kept (%s targets)", len(index), len(images), rule)
    return Samples(
        [images[i] for i in index],
        FER2013_CLASSES,
        targets=targets[index],
        names=[str(files[i]) for i in index],
        origin=str(npz),
    )


def _tar_images(tar_path: Path) -> Iterator[tuple[str, np.ndarray]]:
    with tarfile.open(tar_path) as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is None:
                continue
            pixels = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_COLOR)
            if pixels is not None:
                yield Path(member.name).name, pixels


def load_utkface(folder: Path) -> Samples:
    """The UTKFace training set: `utkface_train.tar` + `labels.csv` (file, age, gender 0 male / 1 female)."""
    tars = sorted(folder.glob("*.tar"))
    labels_csv = folder / "labels.csv"
    if not tars or not labels_csv.is_file():
        raise ConfigError(f"train: {folder} has no UTKFace tar and labels.csv")
    with labels_csv.open(newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    images, ages, genders, names = [], [], [], []
    for name, pixels in _tar_images(tars[0]):
        row = rows.get(name)
        if row is None:
            continue
        images.append(pixels)
        ages.append(float(row["age"]))
        genders.append(1 - int(row["gender"]))  # UTKFace: 0 male, 1 female -> ours: 0 female, 1 male
        names.append(name)
    log.info("UTKFace: %d faces", len(images))
    return Samples(
        images,
        age=np.asarray(ages, np.float32),
        gender=np.asarray(genders, np.int64),
        names=names,
        origin=str(folder),
    )


def _read_image(path: Path) -> np.ndarray:
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ConfigError(f"train: cannot read image {path}")
    return pixels


def load_class_folder(folder: Path) -> Samples:
    """A folder with one subfolder of images per class (class names = subfolder names, sorted)."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ConfigError(f"train: {folder} needs at least two class subfolders, found {len(classes)}")
    images, labels, names = [], [], []
    for k, name in enumerate(classes):
        for path in sorted((folder / name).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(_read_image(path))
                labels.append(k)
                names.append(f"{name}/{path.name}")
    return Samples(
        images, tuple(classes), targets=onehot(labels, len(classes)), names=names, origin=str(folder)
    )


def onehot(labels: Sequence[int], k: int) -> np.ndarray:
    """Class indices -> one-hot float32 (N, k)."""
    out = np.zeros((len(labels), k), np.float32)
    out[np.arange(len(labels)), np.asarray(labels, np.int64)] = 1.0
    return out


def _gender_code(value: str, where: str) -> int:
    v = value.strip().lower()
    if v in ("female", "f", "woman"):
        return 0
    if v in ("male", "m", "man"):
        return 1
    raise ConfigError(f"train: {where}: gender must be female or male, not {value!r}")


def load_csv(path: Path) -> Samples:
    """A CSV of `file` plus `label`, or `age` and/or `gender` (female|male); files relative to the CSV."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "file" not in rows[0]:
        raise ConfigError(f"train: {path} needs a header with a 'file' column")
    columns = set(rows[0])
    images = [_read_image(path.parent / r["file"]) for r in rows]
    names = [r["file"] for r in rows]
    if "label" in columns:
        classes = tuple(sorted({r["label"] for r in rows}))
        index = {c: i for i, c in enumerate(classes)}
        return Samples(
            images,
            classes,
            targets=onehot([index[r["label"]] for r in rows], len(classes)),
            names=names,
            origin=str(path),
        )
    if not columns & {"age", "gender"}:
        raise ConfigError(f"train: {path} needs a 'label', 'age' or 'gender' column")
    age = np.asarray([float(r["age"]) for r in rows], np.float32) if "age" in columns else None
    gender = (
        np.asarray([_gender_code(r["gender"], f"{path} line {i + 2}") for i, r in enumerate(rows)], np.int64)
        if "gender" in columns
        else None
    )
    return Samples(images, age=age, gender=gender, names=names, origin=str(path))


def load_source(spec: str, targets: str = "soft") -> Samples:
    """`spec`: a FER+ npz (or its folder), a UTKFace folder, a class-folder tree, or a CSV."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(f"train: data {spec} not found (looked relative to {Path.cwd()})")
    if path.suffix == ".npz" or (path.is_dir() and (path / "ferplus_train.npz").is_file()):
        return load_ferplus(path, targets)
    if path.is_dir() and any(path.glob("*.tar")) and (path / "labels.csv").is_file():
        return load_utkface(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_csv(path)
    if path.is_dir():
        return load_class_folder(path)
    raise ConfigError(f"train: cannot read {spec} (a folder of class folders, a CSV, or a packed set)")


# ---------------------------------------------------------------- crops


@dataclass(frozen=True)
class CropRule:
    """How a face is cut before resizing: box grown by `margin` on each side, `square` first."""

    detector: str = "yunet"  # or "none": the whole image
    margin: float = 0.0
    square: bool = True
    detect_side: int = 192  # images smaller than this are enlarged (bicubic) before detection
    size: tuple[int, int] = (64, 64)  # model input (w, h)
    colour: str = "gray"  # gray | bgr | rgb

    def as_dict(self) -> dict[str, object]:
        return {
            "detector": self.detector,
            "margin": self.margin,
            "square": self.square,
            "detect_side": self.detect_side,
            "size": list(self.size),
            "colour": self.colour,
            "resize": "linear",
        }


def to_colour(pixels: np.ndarray, colour: str) -> np.ndarray:
    """BGR (or grey) uint8 -> `colour` (gray: H x W x 1)."""
    if pixels.ndim == 2:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if colour == "gray":
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)[:, :, None]
    if colour == "rgb":
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    return pixels


def cut(image: np.ndarray, box: np.ndarray | None, rule: CropRule) -> np.ndarray:
    """The crop of `box` (x1, y1, x2, y2 in `image` pixels; None: the whole image) at `rule.size`."""
    h, w = image.shape[:2]
    if box is not None:
        x1, y1, x2, y2 = np.floor(clip_boxes(expand_boxes(box[None], rule.margin, rule.square), w, h)[0])
        if x2 - x1 >= 2 and y2 - y1 >= 2:
            image = image[int(y1) : int(y2), int(x1) : int(x2)]
    # bilinear, then the colour conversion: what the classify stages do to a crop (prepare_crops)
    pixels = cv2.resize(image, rule.size, interpolation=cv2.INTER_LINEAR)
    return to_colour(pixels, rule.colour)


def _cache_key(samples: Samples, rule: CropRule) -> str:
    digest = hashlib.sha256(json.dumps(rule.as_dict(), sort_keys=True).encode())
    digest.update(samples.origin.encode())
    for image in samples.images[:: max(1, len(samples) // 64)]:
        digest.update(image.tobytes())
    digest.update(str(len(samples)).encode())
    return digest.hexdigest()[:24]


def crop_faces(
    samples: Samples,
    rule: CropRule,
    *,
    threads: int | None = None,
    cache: bool = True,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """(crops (N, h, w, C) uint8 in `rule.colour`, faces not found) for every sample."""
    path = vigil_cache_dir() / "train" / f"crops-{_cache_key(samples, rule)}.npz"
    if cache and path.is_file():
        with np.load(path) as data:
            log.info("crops from cache %s", path)
            return data["crops"], int(data["missed"])
    detector = None
    if rule.detector != "none":
        from models.detector_factory import build_detector

        detector = build_detector(rule.detector, "auto", "CPU", threads)
    channels = 1 if rule.colour == "gray" else 3
    crops = np.empty((len(samples), rule.size[1], rule.size[0], channels), np.uint8)
    missed = 0
    for i, image in enumerate(samples.images):
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
        box = None
        if detector is not None:
            side = max(bgr.shape[:2])
            if side < rule.detect_side:
                factor = rule.detect_side / side
                bgr = cv2.resize(bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            found = detector.detect(bgr)
            row = pick_face(found.xyxy, bgr.shape[1], bgr.shape[0])  # the face the eval scores
            if row is None:
                missed += 1
            else:
                box = np.asarray(found.xyxy[row], np.float32)
        crops[i] = cut(bgr, box, rule).reshape(crops.shape[1:])
        if progress is not None:
            progress(i + 1)
        elif (i + 1) % 5000 == 0:
            log.info("cropped %d of %d images", i + 1, len(samples))
    if detector is not None:
        detector.close()
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, crops=crops, missed=np.int64(missed))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(path)
    return crops, missed


def pixel_groups(crops: np.ndarray) -> np.ndarray:
    """A group id per crop: identical pixels share one (exact copies stay in the same split)."""
    ids: dict[bytes, int] = {}
    return np.asarray(
        [ids.setdefault(hashlib.blake2b(c.tobytes(), digest_size=12).digest(), len(ids)) for c in crops]
    )


def split_groups(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train index, validation index): about `fraction` of the groups held apart, copies together."""
    rng = np.random.default_rng(seed)
    unique = np.unique(groups)
    held = set(rng.choice(unique, size=max(1, round(len(unique) * fraction)), replace=False).tolist())
    mask = np.array([g in held for g in groups.tolist()])
    return np.flatnonzero(~mask), np.flatnonzero(mask)
