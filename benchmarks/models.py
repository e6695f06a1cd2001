"""`vigil bench models`: load time, batch-1 latency and async/batched throughput per model,
backend and device, with every non-TensorFlow row set beside TensorFlow on the same model as
a ratio. All numbers come from one run on this machine; nothing is remembered.

Latency: `backend.infer` on one prepared real image (astronaut.png when the shared media is
beside the repo, else a synthetic frame), batch 1, after warm-up; decode/NMS not included.
Throughput: OpenVINO reloaded with the THROUGHPUT hint and fed through its async queue;
other runtimes through `infer_many` (stacked into one batch where the batch is dynamic).
Detectors are also timed as the detect stages run them (`models.detector_factory`, latency
hint, batch 1), split per frame into pre-processing (`Detector.prepare`), inference and
post-processing (`Detector.decode`): columns pre/infer/post ms. Their inference may differ from
p50 when the detector hands the runtime uint8 frames and the runtime converts them itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.backends.selection import detect_hardware
from models.catalog import ModelEntry, load_catalog
from models.loader import Choice, LoadedModel, choose, open_backend
from models.preprocessing import prepare_crops, prepare_image
from pipeline.errors import ModelError

log = logging.getLogger("vigil.bench")
_MEDIA = Path(__file__).resolve().parents[1] / ".." / "shared" / "media" / "astronaut.png"


def _image(path: str | Path | None = None) -> np.ndarray:
    path = Path(path) if path else _MEDIA
    image = cv2.imread(str(path)) if path.is_file() else None
    if image is None:  # a deterministic synthetic frame keeps the bench runnable anywhere
        image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    return image


def devices_for(backend: str) -> list[str]:
    """The devices a backend can use on this machine."""
    hw = detect_hardware()
    if backend == "openvino":
        return [d for d in hw.openvino_devices if d.split(".")[0] in ("CPU", "GPU", "NPU")] or ["CPU"]
    if backend == "tensorflow":
        return ["CPU", "GPU"] if hw.tensorflow_gpu else ["CPU"]
    return ["CPU", "cuda"] if hw.opencv_cuda else ["CPU"]


def _feeds(loaded: LoadedModel, image: np.ndarray) -> dict[str, np.ndarray]:
    fmt = loaded.resolved.format
    name = loaded.backend.inputs[0].name
    if fmt.decoder == "classifier":
        return {name: prepare_crops([image], fmt.input)}
    return {name: prepare_image(image, fmt.input)[0]}


def _latencies(loaded: LoadedModel, feeds: dict[str, np.ndarray], seconds: float) -> list[float]:
    for _ in range(3):
        loaded.backend.infer(feeds)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        start = time.perf_counter()
        loaded.backend.infer(feeds)
        times.append(time.perf_counter() - start)
    return times


def _throughput(loaded: LoadedModel, feeds: dict[str, np.ndarray], seconds: float) -> tuple[float, int]:
    n = max(4, 4 * loaded.backend.info.requests)
    work = [feeds] * n
    loaded.backend.infer_many(work)  # warm-up (builds the async queue)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done < n:
        loaded.backend.infer_many(work)
        done += n
    return done / (time.perf_counter() - start), loaded.backend.info.requests


def _split(
    choice: Choice, device: str, threads: int | None, image: np.ndarray, seconds: float
) -> dict[str, Any]:
    """Median ms per frame of a detector's pre-processing, inference and post-processing."""
    from models.detector_factory import open_detector
    from models.detectors import BackendDetector

    if choice.resolved.format.decoder == "classifier":
        return {}
    detector = open_detector(choice, device, threads)
    try:
        if not isinstance(detector, BackendDetector):  # cv2.FaceDetectorYN: one opaque call
            return {}
        parts: list[tuple[float, float, float]] = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(parts) < 5:
            t0 = time.perf_counter()
            feeds, transform = detector.prepare(image)
            t1 = time.perf_counter()
            outputs = detector.backend.infer(feeds)
            t2 = time.perf_counter()
            detector.decode(outputs, transform)
            parts.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
    finally:
        detector.close()
    pre, infer, post = (round(float(np.median(col)) * 1000, 2) for col in zip(*parts, strict=True))
    return {"pre_ms": pre, "infer_ms": infer, "post_ms": post}


def bench_one(
    choice: Choice, device: str, seconds: float, threads: int | None, image: np.ndarray
) -> dict[str, Any]:
    """One row: model x backend x device."""
    latency_model = open_backend(choice, device, threads, mode="latency")
    feeds = _feeds(latency_model, image)
    times = np.asarray(_latencies(latency_model, feeds, seconds / 2)) * 1000
    info = latency_model.info()
    load_s = latency_model.load_seconds
    if choice.backend == "openvino":
        latency_model.backend.close()
        throughput_model = open_backend(choice, device, threads, mode="throughput")
    else:
        throughput_model = latency_model
    fps, requests = _throughput(throughput_model, feeds, seconds / 2)
    throughput_model.backend.close()
    split = _split(choice, device, threads, image, seconds / 4)
    return {
        "model": info.model,
        "format": info.format,
        "backend": info.backend,
        "device": info.device,
        "precision": info.precision,
        "runtime": info.runtime,
        "load_s": round(load_s, 3),
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p90_ms": round(float(np.percentile(times, 90)), 2),
        "fps_batch1": round(1000.0 / float(np.percentile(times, 50)), 1),
        "fps_async": round(fps, 1),
        "requests": requests,
        "runs": len(times),
        "pre_ms": split.get("pre_ms"),
        "infer_ms": split.get("infer_ms"),
        "post_ms": split.get("post_ms"),
    }


def _device_class(device: str) -> str:
    return "GPU" if any(k in device.upper() for k in ("GPU", "CUDA")) else "CPU"


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """`x_tf_latency` = TF p50 / this p50, `x_tf_fps` = this fps / TF fps (same model, same device class)."""
    for row in rows:
        tf = next(
            (
                r
                for r in rows
                if r["backend"] == "tensorflow"
                and r["model"] == row["model"]
                and _device_class(r["device"]) == _device_class(row["device"])
            ),
            None,
        )
        if tf is None or tf is row:
            row["x_tf_latency"] = row["x_tf_fps"] = None
            continue
        row["x_tf_latency"] = round(tf["p50_ms"] / row["p50_ms"], 2) if row["p50_ms"] else None
        row["x_tf_fps"] = round(row["fps_async"] / tf["fps_async"], 2) if tf["fps_async"] else None


def run(
    models: list[str] | None = None,
    seconds: float = 2.0,
    *,
    threads: int | None = None,
    backends: Sequence[str] | None = None,
    image: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Benchmark `models` (default: every catalog model with files present) on every backend
    that runs them and every device it has here; `seconds` per row (half latency, half throughput).
    Rows whose files are missing are skipped with a log line."""
    catalog = load_catalog()
    entries: list[ModelEntry] = [catalog.get(m) for m in models] if models else list(catalog.models)
    frame = _image(image)
    rows: list[dict[str, Any]] = []
    for entry in entries:
        for backend in entry.backends:
            if backends and backend not in backends:
                continue
            try:
                choice = choose(entry.name, backend)
            except ModelError as exc:
                log.info("bench: skip %s on %s: %s", entry.name, backend, exc)
                continue
            for device in devices_for(backend):
                try:
                    rows.append(bench_one(choice, device, seconds, threads, frame))
                except ModelError as exc:
                    log.warning("bench: %s on %s/%s failed: %s", entry.name, backend, device, exc)
    _add_ratios(rows)
    return rows


_COLUMNS = [
    ("model", "model", "{}"),
    ("format", "format", "{}"),
    ("backend", "backend", "{}"),
    ("device", "device", "{}"),
    ("precision", "prec", "{}"),
    ("load_s", "load s", "{:.2f}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p90_ms", "p90 ms", "{:.1f}"),
    ("fps_batch1", "fps b1", "{:.0f}"),
    ("fps_async", "fps async", "{:.0f}"),
    ("requests", "req", "{}"),
    ("pre_ms", "pre ms", "{:.2f}"),
    ("infer_ms", "infer ms", "{:.1f}"),
    ("post_ms", "post ms", "{:.2f}"),
    ("x_tf_latency", "xTF p50", "{:.2f}"),
    ("x_tf_fps", "xTF fps", "{:.2f}"),
]


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table (xTF columns: speed relative to TensorFlow on the same model; >1 = faster)."""
    cells = [[title for _, title, _ in _COLUMNS]]
    for row in rows:
        cells.append(["-" if row.get(k) is None else fmt.format(row[k]) for k, _, fmt in _COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
