"""`vigil bench batch CONFIG CLIP`: `vigil batch` over N copies of a clip beside a shell loop
of `vigil run` (one process per file, one after another), in files per second, measured in one
run. Also the two local pool shapes that fit the cores (1 run x all threads, N runs x 1
thread: the measurement behind `THREADS_PER_RUN`) and, with the `ray` extra, Ray on a local
cluster of 1 and of 2 nodes sharing the same cores (the cost of Ray, not a speed-up: a second
node on the same machine adds no CPU)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

VIGIL = [sys.executable, "-c", "from pipeline.cli import entry; entry()"]  # the `vigil` command
OBJECT_STORE = 80 * 1024 * 1024


def _timed(command: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _shell_loop(config: Path, files: list[Path], out: Path) -> float:
    t0 = time.perf_counter()
    for f in files:
        _timed([*VIGIL, "-q", "run", str(config), "--source", str(f), "--output", str(out / f.name)])
    return time.perf_counter() - t0


def _local(batch: list[str], inputs: Path, workers: int, out: Path) -> float:
    return _timed([*batch, str(inputs), "-o", str(out), "--workers", str(workers)])


def _ray_batch(config: Path, inputs: Path, out: Path, *, nodes: int, cores: int) -> float:
    """`vigil batch --ray ADDRESS` against a local cluster of `nodes` nodes sharing the cores
    (started before the clock, as a cluster would be already running)."""
    from ray.cluster_utils import Cluster

    per_node = max(1, cores // nodes)
    head = {"num_cpus": per_node, "object_store_memory": OBJECT_STORE, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=per_node, object_store_memory=OBJECT_STORE)
        cluster.wait_for_nodes()
        return _timed(
            [*VIGIL, "-q", "batch", str(config), str(inputs), "-o", str(out), "--ray", cluster.address]
        )
    finally:
        cluster.shutdown()


def _row(name: str, files: int, frames: int, seconds: float, baseline: float | None) -> dict[str, Any]:
    return {
        "run": name,
        "files": files,
        "seconds": round(seconds, 2),
        "files_per_s": round(files / seconds, 3),
        "frames_per_s": round(frames / seconds, 1),
        "x_shell_loop": 1.0 if baseline is None else round(baseline / seconds, 2),
    }


def run(config: Path, clip: Path, files: int = 8, ray: bool = True, rounds: int = 1) -> list[dict[str, Any]]:
    """Rows for the shell loop (the baseline), `vigil batch` local (default shape, and the other
    shape that fits the cores) and, when `ray` and Ray is installed, Ray with 1 and 2 nodes.
    With `rounds` > 1 the variants are interleaved and each keeps its best round, so a burst of
    load elsewhere on the machine does not decide a ratio."""
    import cv2

    cap = cv2.VideoCapture(str(clip))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) * files
    cap.release()
    cores = os.cpu_count() or 1
    batch = [*VIGIL, "-q", "batch", str(config)]
    with tempfile.TemporaryDirectory(prefix="vigil-bench-batch-") as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        paths = [inputs / f"clip{i}{clip.suffix}" for i in range(files)]
        for p in paths:
            shutil.copyfile(clip, p)
        out = Path(tmp)
        variants: dict[str, Callable[[Path], float]] = {
            "shell loop of `vigil run`": partial(_shell_loop, config, paths),
            f"vigil batch, {cores} runs x 1 thread (default)": partial(_local, batch, inputs, cores),
            f"vigil batch, 1 run x {cores} threads": partial(_local, batch, inputs, 1),
        }
        if ray and importlib.util.find_spec("ray") is not None:
            for nodes in (1, 2):
                name = f"vigil batch --ray, {nodes} local node(s), {cores} CPUs"
                variants[name] = partial(_ray_batch, config, inputs, nodes=nodes, cores=cores)
        best: dict[str, float] = {}
        for r in range(rounds):
            for i, (name, measure) in enumerate(variants.items()):
                seconds = measure(out / f"r{r}v{i}")
                best[name] = min(best.get(name, seconds), seconds)
    loop = best.pop("shell loop of `vigil run`")
    rows = [_row("shell loop of `vigil run`", files, frames, loop, None)]
    return rows + [_row(name, files, frames, seconds, loop) for name, seconds in best.items()]
