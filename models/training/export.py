"""Write a trained model as `.keras`, OpenVINO IR (`openvino.convert_model`, FP16 weights) and TF
Lite (float16 weights), plus `<name>.vigil.json`: what the model expects (input size, colour order, value scaling,
the crop: margin and square around the detector's box), its labels and heads in output order, and
the validation metrics. `classify.keras` reads that file beside any of the three model files, so
an exported model runs on detected faces with no hand-written options.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SIDECAR_FORMAT = "vigil-classifier/1"
SIDECAR_SUFFIX = ".vigil.json"


def sidecar_path(model_path: str | Path) -> Path:
    """`<stem>.vigil.json` beside a model file or SavedModel folder."""
    p = Path(model_path)
    return p.parent / f"{p.stem if p.is_file() or p.suffix else p.name}{SIDECAR_SUFFIX}"


def read_sidecar(model_path: str | Path) -> dict[str, Any] | None:
    """The `vigil.json` description of a model, if one sits beside it."""
    path = sidecar_path(model_path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT else None


def export_model(
    core: Any, output: str | Path, name: str, formats: Sequence[str], sidecar: dict[str, Any]
) -> list[str]:
    """Write `core` in `formats` (keras, openvino, tflite) and its `sidecar` description into
    `output` as `<name>.*`; returns the file names."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    if "keras" in formats:
        core.save(out / f"{name}.keras")
        files.append(f"{name}.keras")
    if {"openvino", "tflite"} & set(formats):
        with tempfile.TemporaryDirectory(prefix="vigil-export-") as tmp:
            saved = Path(tmp) / "saved_model"
            core.export(str(saved), format="tf_saved_model", verbose=False)
            if "openvino" in formats:
                import openvino as ov

                model = ov.convert_model(str(saved))
                ov.save_model(model, str(out / f"{name}.xml"), compress_to_fp16=True)
                files += [f"{name}.xml", f"{name}.bin"]
            if "tflite" in formats:
                import tensorflow as tf

                converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
                converter.optimizations = [tf.lite.Optimize.DEFAULT]  # float16 weights: half the size,
                converter.target_spec.supported_types = [tf.float16]  # float32 maths (as the IR's FP16)
                (out / f"{name}.tflite").write_bytes(converter.convert())
                files.append(f"{name}.tflite")
    (out / f"{name}{SIDECAR_SUFFIX}").write_text(
        json.dumps({"format": SIDECAR_FORMAT, **sidecar}, indent=2) + "\n"
    )
    files.append(f"{name}{SIDECAR_SUFFIX}")
    return files
