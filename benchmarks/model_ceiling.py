"""The model's own throughput: the ceiling `vigil bench pipeline` sets a pipeline beside.

On the frames the pipeline reads (decoded once, beforehand), each frame is prepared once as
the ready input tensor of the original model (the Python path: no conversion inside the
runtime), then the model alone runs through the same runtime, device, precision and thread
budget as the pipeline's detect stage, with the throughput hint and its async queue kept full
(`Backend.infer_many`). Nothing else is timed: no decoding, no pre/post-processing, no links.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.engine import open_reader, stage_threads
from pipeline.config import PipelineConfig, StageConfig

MAX_FRAMES = 120  # distinct decoded frames kept in memory; the run loops over them


def detector_stage(config: PipelineConfig) -> StageConfig | None:
    """The first DNN detector stage (a `detect.*` kind with a `model` option), if any."""
    for stage in config.stages:
        if stage.kind.startswith("detect.") and hasattr(stage.options, "model"):
            return stage
    return None


def decoded_frames(config: PipelineConfig, limit: int = MAX_FRAMES) -> list[np.ndarray]:
    """Up to `limit` decoded frames of the first source, as the pipeline reads them."""
    reader = open_reader(config.sources[0])
    frames: list[np.ndarray] = []
    try:
        while len(frames) < limit:
            captured = reader.read()
            if captured is None or captured.image is None:
                break
            frames.append(captured.image)
    finally:
        reader.close()
    return frames


class ModelAlone:
    """The detect stage's model loaded alone for throughput, with its inputs ready."""

    def __init__(self, config: PipelineConfig, stage: StageConfig, frames: list[np.ndarray]) -> None:
        from models.loader import choose, open_backend
        from models.preprocessing import prepare_image

        opts: Any = stage.options
        choice = choose(opts.model, opts.backend, labels=getattr(opts, "labels", None))
        self.threads = stage_threads(config, stage.id)
        self.loaded = open_backend(
            choice, opts.device, self.threads, mode="throughput", precision=getattr(opts, "precision", None)
        )
        spec = choice.resolved.format.input
        size = spec.size or _backend_size(self.loaded.backend.inputs[0].shape)
        name = self.loaded.backend.inputs[0].name
        self.feeds = [{name: prepare_image(f, spec, size)[0]} for f in frames]
        self.loaded.backend.infer_many(self.feeds[:8])  # warm-up: builds the async queue

    def label(self) -> str:
        info, b = self.loaded.info(), self.loaded.backend.info
        return (
            f"model alone: {info.model} on {info.backend} {info.device} {info.precision}, "
            f"{self.threads} threads, {b.requests} async requests, ready tensors"
        )

    def measure(self, seconds: float) -> tuple[int, float]:
        """(inferences, seconds) with the queue full, for at least `seconds` and one pass."""
        done, start = 0, time.perf_counter()
        while done < len(self.feeds) or time.perf_counter() - start < seconds:
            self.loaded.backend.infer_many(self.feeds)
            done += len(self.feeds)
        return done, time.perf_counter() - start

    def close(self) -> None:
        self.loaded.backend.close()


def _backend_size(shape: tuple[int | None, ...]) -> tuple[int, int] | None:
    if len(shape) != 4:
        return None
    h, w = (shape[2], shape[3]) if shape[1] in (1, 3) else (shape[1], shape[2])
    return (w, h) if w and h else None


def run(config: PipelineConfig, seconds: float = 3.0) -> dict[str, Any] | None:
    """One row: the detect stage's model alone (None when the pipeline has no DNN detector)."""
    stage = detector_stage(config)
    if stage is None:
        return None
    model = ModelAlone(config, stage, decoded_frames(config))
    try:
        n, elapsed = model.measure(seconds)
        return {"run": model.label(), "frames": n, "seconds": round(elapsed, 3), "fps": round(n / elapsed, 2)}
    finally:
        model.close()
