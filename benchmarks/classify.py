"""`vigil bench classify`: batched vs per-face classification, measured in one run on this machine.

    vigil bench classify [--faces 1 4 16] [--rounds 15] [--no-tensorflow]

For each classifier stage and N faces per frame (the astronaut's face, jittered a few pixels so
the crops differ), times
  batched   one `process(frame)` with N face detections: every crop in one inference;
  per-face  N `process(frame)` calls with one detection each (what a per-face loop does; the baseline);
  ir-b1     (OpenVINO IRs only) the batched call on the catalog IR as shipped, whose static
            batch of 1 makes the backend run N requests through its async queue,
and prints ms per frame and the ratio per-face / batched. Rounds are interleaved so load
from other processes hits every variant alike; the median round is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.engine import standalone_stage
from pipeline.errors import SourceError
from pipeline.frame import Detections, Frame

# the shared test media beside the repository (the face box below is measured on this image)
ASTRONAUT = Path(__file__).resolve().parents[1] / ".." / "shared" / "media" / "astronaut.png"

FACE = (178.2, 62.9, 268.1, 176.2)  # YuNet's box on the astronaut (MANIFEST section 1)
CASES: list[tuple[str, dict[str, Any], bool]] = [  # (kind, options, needs tensorflow)
    ("classify.emotion", {"model": "emotions-recognition-retail-0003", "backend": "openvino"}, False),
    ("classify.emotion", {"model": "fer2013-mini-xception", "backend": "openvino"}, False),
    ("classify.emotion", {"model": "fer2013-mini-xception", "backend": "tensorflow"}, True),
    ("classify.age_gender", {"model": "age-gender-recognition-retail-0013", "backend": "openvino"}, False),
    ("classify.age_gender", {"model": "ssrnet", "backend": "openvino"}, False),
    ("classify.age_gender", {"model": "ssrnet", "backend": "tensorflow"}, True),
    ("classify.age_gender", {"model": "vigil-age-gender", "backend": "openvino"}, False),
]


def _stage(kind: str, options: dict[str, Any], threads: int) -> Any:
    return standalone_stage(kind, {**options, "smoothing": False}, threads)


def _static_batch_stage(kind: str, options: dict[str, Any], threads: int) -> Any | None:
    """The same stage on the catalog IR as shipped (static batch 1), or None when not an IR."""
    from models.classifiers import build_classifier

    stage = _stage(kind, options, threads)
    if not any(m.info.format == "ir" for m in stage.models):
        return None
    stage.models = [build_classifier(m.info.model, "openvino", "CPU", threads) for m in stage.models]
    return stage


def _frames(image: np.ndarray, n: int) -> tuple[Frame, list[Frame]]:
    rng = np.random.default_rng(n)
    boxes = np.array(FACE, np.float32) + rng.integers(-3, 4, (n, 4)).astype(np.float32)
    whole = Frame("bench", 0, 0.0, 0.0, image, Detections.create(boxes, label=["face"] * n))
    singles = [whole.with_detections(whole.detections[i]) for i in range(n)]
    return whole, singles


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(
    faces: list[int], rounds: int, tensorflow: bool, threads: int, image_path: str | Path = ASTRONAUT
) -> list[dict[str, Any]]:
    """One row per (stage, model, backend, faces): batched_ms, per_face_ms, ir_b1_ms, speedup."""
    image = cv2.imread(str(image_path))
    if image is None:
        raise SourceError(f"cannot read {image_path} (the benchmark's face is on the astronaut image)")
    rows = []
    for kind, options, needs_tf in CASES:
        if needs_tf and not tensorflow:
            continue
        stage = _stage(kind, options, threads)
        static = _static_batch_stage(kind, options, threads)
        info = stage.context.report["models"][0]
        for n in faces:
            whole, singles = _frames(image, n)
            variants = {
                "batched": lambda st=stage, w=whole: st.process(w),
                "per-face": lambda st=stage, s=singles: [st.process(f) for f in s],
            }
            if static is not None:
                variants["ir-b1"] = lambda st=static, w=whole: st.process(w)
            for fn in variants.values():  # warm up (OpenVINO compiles each new batch shape once)
                fn(), fn()
            times: dict[str, list[float]] = {k: [] for k in variants}
            for _ in range(rounds):
                for name, fn in variants.items():
                    times[name].append(_time(fn))
            ms = {k: statistics.median(v) * 1000 for k, v in times.items()}
            rows.append(
                {
                    "stage": kind,
                    "model": options["model"],
                    "backend": f"{info['backend']}/{info['format']}",
                    "faces": n,
                    "batched_ms": ms["batched"],
                    "per_face_ms": ms["per-face"],
                    "ir_b1_ms": ms.get("ir-b1"),
                    "speedup": ms["per-face"] / ms["batched"],
                }
            )
        stage.close()
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'stage':<20} {'model':<35} {'backend':<18} {'faces':>5} {'batched ms':>11} {'per-face ms':>12} "
        f"{'x faster':>9} {'IR batch-1 ms':>14}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ir = f"{r['ir_b1_ms']:.2f}" if r["ir_b1_ms"] is not None else "-"
        lines.append(
            f"{r['stage']:<20} {r['model']:<35} {r['backend']:<18} {r['faces']:>5} {r['batched_ms']:>11.2f} "
            f"{r['per_face_ms']:>12.2f} {r['speedup']:>9.2f} {ir:>14}"
        )
    return "\n".join(lines)
