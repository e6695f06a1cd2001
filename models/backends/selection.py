"""`backend: auto`: which runtime to use on this machine, and why.

Rules, in order: TensorFlow when an NVIDIA GPU is visible, a GPU-capable TensorFlow is
installed and the model has a TensorFlow format (SavedModel, frozen graph, Keras); OpenCV DNN
when an NVIDIA GPU is visible through a CUDA build of OpenCV; OpenVINO whenever it can read
the model (Intel CPU/iGPU/NPU, and also the fastest CPU path measured on other x86 CPUs);
then TensorFlow/LiteRT on the CPU; OpenCV DNN last. Hardware probing imports no runtime
except OpenVINO (to list Intel devices).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

TF_NATIVE_KINDS = frozenset({"savedmodel", "frozen_graph", "keras"})


@dataclass(frozen=True)
class Hardware:
    """What `auto` looks at: CPU vendor, visible GPUs, installed runtimes."""

    cpu_vendor: str  # GenuineIntel, AuthenticAMD, ARM, ... ("" when unknown)
    cpu_name: str
    nvidia_gpu: bool
    tensorflow_gpu: bool  # the installed TensorFlow distribution can use CUDA
    opencv_cuda: bool
    openvino_devices: tuple[str, ...]
    runtimes: frozenset[str]  # importable: openvino, tensorflow, litert (opencv always)

    @property
    def intel(self) -> bool:
        return self.cpu_vendor == "GenuineIntel" or any(
            d.startswith(("GPU", "NPU")) for d in self.openvino_devices
        )


def _cpu() -> tuple[str, str]:
    vendor, name = "", platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "vendor_id" and not vendor:
                vendor = value.strip()
            elif key.strip() == "model name":
                name = value.strip()
                break
    except OSError:
        pass
    if not vendor and platform.machine().lower() in ("arm64", "aarch64"):
        vendor = "ARM"
    return vendor, name


def _nvidia_visible() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir():
        return any(gpus.iterdir())
    return Path("/dev/nvidia0").exists() or (
        platform.system() == "Windows" and shutil.which("nvidia-smi") is not None
    )


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _tensorflow_gpu() -> bool:
    """`tensorflow` (not `tensorflow-cpu`) is the distribution that ships CUDA kernels."""
    try:
        metadata.distribution("tensorflow")
        return True
    except metadata.PackageNotFoundError:
        return False


@lru_cache(maxsize=1)
def detect_hardware() -> Hardware:
    """Probe once per process."""
    from models.backends.opencv_dnn import cuda_available

    vendor, name = _cpu()
    runtimes = {
        r
        for r, m in (("openvino", "openvino"), ("tensorflow", "tensorflow"), ("litert", "ai_edge_litert"))
        if _has(m)
    }
    devices: tuple[str, ...] = ()
    if "openvino" in runtimes:
        from models.backends.openvino import shared_core

        devices = tuple(shared_core().available_devices)
    nvidia = _nvidia_visible()
    return Hardware(
        vendor,
        name,
        nvidia,
        nvidia and _tensorflow_gpu(),
        nvidia and cuda_available(),
        devices,
        frozenset(runtimes),
    )


def rank_backends(
    backends: Sequence[str], kinds: Iterable[str] = (), hardware: Hardware | None = None
) -> list[tuple[str, str]]:
    """Order `backends` (those that can run some format of the model) best first, with reasons.

    `kinds`: the format kinds the model has for TensorFlow (decides the NVIDIA rule).
    Backends whose runtime is not installed are left out.
    """
    hw = hardware or detect_hardware()
    tf_ok = "tensorflow" in hw.runtimes or "litert" in hw.runtimes
    usable = [
        b
        for b in backends
        if b == "opencv" or (b == "openvino" and "openvino" in hw.runtimes) or (b == "tensorflow" and tf_ok)
    ]
    ranked: list[tuple[str, str]] = []

    def add(backend: str, reason: str) -> None:
        if backend in usable and all(backend != b for b, _ in ranked):
            ranked.append((backend, reason))

    if hw.nvidia_gpu and hw.tensorflow_gpu and TF_NATIVE_KINDS.intersection(kinds):
        add("tensorflow", "an NVIDIA GPU is visible and the model has a TensorFlow format")
    if hw.opencv_cuda:
        add("opencv", "an NVIDIA GPU is visible through OpenCV's CUDA build")
    if hw.intel:
        add("openvino", f"Intel hardware ({', '.join(hw.openvino_devices) or hw.cpu_name})")
    add(
        "openvino",
        f"OpenVINO reads this model and is the fastest CPU path ({hw.cpu_name or hw.cpu_vendor or 'CPU'}"
        f"{'' if hw.nvidia_gpu else ', no NVIDIA GPU visible'})",
    )
    add("tensorflow", "OpenVINO cannot run this model; TensorFlow/LiteRT on the CPU")
    add("opencv", "the only installed runtime that reads this model")
    return ranked
