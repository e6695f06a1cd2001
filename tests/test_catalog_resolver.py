"""Catalog, resolver, verification cache and fetch (offline: local wheels and file:// URLs)."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from models import integrity
from models.catalog import load_catalog, parse_catalog
from models.fetch import fetch
from models.labels import load_labels
from models.resolver import SHIPPED_WEIGHTS, resolve, search_roots
from pipeline.cli.models import cmd_list, cmd_verify
from pipeline.errors import ModelError

YUNET = "face_detection/yunet/face_detection_yunet_2023mar.onnx"
EXPECTED_MODELS = {
    "faceapi-age-gender",
    "yunet",
    "blazeface-short-range",
    "blazeface-full-range",
    "blazeface-back",
    "yolox-nano",
    "ssd-mobilenet-v1-coco",
    "pedestrian-ssdlite",
    "person-detection-retail-0013",
    "fer2013-mini-xception",
    "fer2013-mini-xception-quant",
    "emotions-recognition-retail-0003",
    "age-gender-recognition-retail-0013",
    "ssrnet-age-imdb",
    "ssrnet-gender-imdb",
    "vigil-age-gender",  # ours: ships in models/weights/
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own user cache (verification cache, fetch target)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def _entry(path: str, data: bytes, source: dict) -> dict:
    return {
        "name": "tiny",
        "task": "face_detection",
        "licence": {"name": "MIT"},
        "decoder": "yunet",
        "input": {"size": [8, 8]},
        "formats": [
            {
                "id": "onnx",
                "kind": "onnx",
                "backends": ["openvino"],
                "files": [
                    {
                        "path": path,
                        "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "source": source,
                    }
                ],
            }
        ],
    }


def test_catalog_lists_every_manifest_model_with_typed_fields() -> None:
    catalog = load_catalog()
    assert set(catalog.names()) == EXPECTED_MODELS
    yolox = catalog.get("yolox-nano")
    assert [f.kind for f in yolox.formats] == ["onnx", "savedmodel"]
    assert yolox.formats[0].input.layout == "NCHW" and yolox.formats[1].input.layout == "NHWC"
    assert yolox.formats[0].input.resize == "letterbox" and yolox.formats[0].input.pad_value == 114
    assert yolox.labels is not None and yolox.labels.names is not None and len(yolox.labels.names) == 80
    ssd = catalog.get("ssd-mobilenet")  # alias
    assert ssd.name == "ssd-mobilenet-v1-coco" and ssd.formats[1].file("anchors") is not None
    assert ssd.formats[1].outputs[0].dequantize == (0.07902787625789642, 191)
    assert catalog.get("ssrnet-age-imdb").licence.training_data_flag
    assert catalog.get("blazeface").variant == "short_range"
    faceapi = catalog.get("faceapi")  # alias
    assert faceapi.licence.training_data_flag and faceapi.formats[0].input.colour == "RGB"
    assert (faceapi.formats[0].input.crop_margin, faceapi.formats[0].input.crop_square) == (0.0, True)
    assert catalog.get("yunet").formats[0].input.max_scale == 1.0


@pytest.mark.model
def test_catalog_sizes_and_hashes_match_the_shared_files(models_dir: Path) -> None:
    for entry in load_catalog().models:
        for fmt in entry.formats:
            for f in fmt.files:
                shipped = f.source is not None and f.source.shipped
                path = (SHIPPED_WEIGHTS if shipped else models_dir) / f.path
                assert path.stat().st_size == f.bytes, f.path
                assert integrity.sha256_file(path) == f.sha256, f.path


@pytest.mark.model
def test_label_sets_match_the_shared_label_files(models_dir: Path) -> None:
    catalog = load_catalog()
    assert list(catalog.get("yolox-nano").label_names() or ()) == load_labels(
        models_dir / "yolo/coco80_labels.txt"
    )
    ssd = catalog.get("ssd-mobilenet-v1-coco")
    assert list(ssd.label_names() or ()) == load_labels(models_dir / "ssd/ssd_mobilenet_v1_coco_labelmap.txt")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda e: e["formats"][0]["files"][0].update(sha256="abc"), "sha256"),
        (lambda e: e["formats"][0]["files"][0].update(path="../escape.onnx"), "relative POSIX path"),
        (lambda e: e["formats"][0].update(backends=["tensorrt"]), "backends"),
        (lambda e: e["formats"][0]["files"][0].pop("source"), "needs bytes, sha256 and source"),
        (lambda e: e["formats"][0]["files"][0].update(source={"pypi": "x==1"}), "wheel_path"),
    ],
)
def test_a_bad_catalog_entry_is_a_clear_error(change, expected: str) -> None:
    entry = _entry("a/b.onnx", b"x", {"url": "file:///x"})
    change(entry)
    with pytest.raises(ModelError) as err:
        parse_catalog({"version": 1, "models": [entry]}, origin="test.yaml")
    message = str(err.value)
    assert expected in message and "test.yaml" in message and "\n" not in message


def test_search_path_is_vigil_models_then_shipped_weights_then_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_MODELS", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")]))
    shipped = Path(__file__).resolve().parents[1] / "models" / "weights"
    assert search_roots() == [tmp_path / "a", tmp_path / "b", shipped, tmp_path / "xdg" / "vigil" / "models"]


def test_shipped_weights_resolve_with_no_models_folder_and_match_their_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_MODELS", str(tmp_path / "empty"))
    for backend, kind in (("openvino", "openvino_ir"), ("tensorflow", "tflite")):
        found = resolve("vigil-age-gender", [backend])
        assert found.format.kind == kind and found.path.parent.parent.name == "weights"
        assert all(f.source is not None and f.source.shipped for f in found.format.files)
    assert all(p.stat().st_size <= 2_000_000 for p in found.path.parent.iterdir())  # the 2 MB budget


@pytest.mark.model
def test_resolve_picks_the_format_of_the_backend(models_dir: Path) -> None:
    ov = resolve("yolox-nano", ["openvino"])
    assert ov.path == models_dir / "yolo/yolox_nano.onnx" and ov.backend == "openvino"
    tf = resolve("yolox-nano", ["tensorflow"])
    assert tf.path == models_dir / "yolo/yolox_nano_tf_savedmodel" and tf.format.kind == "savedmodel"
    ssd = resolve("ssd-mobilenet-v1-coco", ["openvino"])
    assert (
        ssd.format.id == "nopp"
        and ssd.file_path("anchors") == models_dir / "ssd/ssd_mobilenet_v1_coco_quant_anchors.npy"
    )
    with pytest.raises(ModelError, match="no format that tensorflow can run"):
        resolve("person-detection-retail-0013", ["tensorflow"])


def test_missing_file_names_file_search_path_and_fetch_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_MODELS", str(tmp_path / "empty"))
    with pytest.raises(ModelError) as err:
        resolve("yunet", ["openvino"])
    message = str(err.value)
    assert "\n" not in message
    assert YUNET in message
    assert str(tmp_path / "empty") in message and str(tmp_path / "xdg" / "vigil" / "models") in message
    assert "vigil models fetch yunet" in message


@pytest.mark.model
def test_corrupt_copy_is_refused_with_one_line(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "root" / YUNET
    copy.parent.mkdir(parents=True)
    data = bytearray((models_dir / YUNET).read_bytes())
    data[1000] ^= 0xFF  # same size, different content: only the sha256 can tell
    copy.write_bytes(bytes(data))
    monkeypatch.setenv("VIGIL_MODELS", str(tmp_path / "root"))
    with pytest.raises(ModelError) as err:
        resolve("yunet")
    message = str(err.value)
    assert "\n" not in message and "corrupt" in message and "sha256" in message
    assert (
        str(copy) in message and str(tmp_path / "root") in message and "vigil models fetch yunet" in message
    )


def test_unknown_model_name_suggests_close_names() -> None:
    with pytest.raises(ModelError) as err:
        resolve("yunett")
    assert "unknown model 'yunett'" in str(err.value) and "yunet" in str(err.value).split("mean", 1)[1]
    assert "\n" not in str(err.value)


@pytest.mark.model
def test_sha256_is_computed_once_per_file_version(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    (root / YUNET).parent.mkdir(parents=True)
    shutil.copy(models_dir / YUNET, root / YUNET)
    monkeypatch.setenv("VIGIL_MODELS", str(root))
    calls: list[Path] = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: calls.append(p) or real(p))
    resolve("yunet")
    resolve("yunet")
    assert len(calls) == 1
    assert (tmp_path / "xdg" / "vigil" / "verified-sha256.json").is_file()
    os.utime(root / YUNET, ns=(1, 1))  # a changed mtime means: hash again
    resolve("yunet")
    assert len(calls) == 2


@pytest.mark.model
def test_a_user_file_resolves_with_its_labels(tmp_path: Path, models_dir: Path) -> None:
    model = tmp_path / "mine.onnx"
    shutil.copy(models_dir / "yolo/yolox_nano.onnx", model)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    r = resolve(str(model), labels=str(labels))
    assert r.user_file and r.path == model and r.labels == ("cat", "dog") and r.format.decoder == "yolo"
    assert set(r.format.backends) == {"openvino", "opencv"}
    with pytest.raises(ModelError, match="neither a catalog name nor an existing file"):
        resolve(str(tmp_path / "nothere.onnx"))


def _wheel(directory: Path, name: str, member: str, data: bytes) -> Path:
    """A minimal valid wheel holding one data file."""
    dist = f"{name}-0.1.dist-info"
    path = directory / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        zf.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist}/RECORD", "")
    return path


def test_fetch_from_a_wheel_with_pip_verifies_and_installs(tmp_path: Path) -> None:
    data = b"tiny model bytes" * 100
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "vigil_tiny_model", "vigil_tiny_model/data/tiny.onnx", data)
    source = {"pypi": "vigil_tiny_model==0.1", "wheel_path": "vigil_tiny_model/data/tiny.onnx"}
    catalog = parse_catalog({"version": 1, "models": [_entry("tiny/tiny.onnx", data, source)]})
    dest = tmp_path / "cache"
    report = fetch("tiny", dest=dest, catalog=catalog, find_links=str(wheels))
    assert report.installed == [dest / "tiny/tiny.onnx"] and report.ok
    assert (dest / "tiny/tiny.onnx").read_bytes() == data
    again = fetch("tiny", dest=dest, catalog=catalog, find_links=str(wheels))
    assert again.installed == [] and again.present == [dest / "tiny/tiny.onnx"]


def test_fetch_from_a_file_url_and_refuse_a_sha_mismatch(tmp_path: Path) -> None:
    data = b"\x00model\x01" * 50
    served = tmp_path / "served.bin"
    served.write_bytes(data)
    dest = tmp_path / "cache"
    good = parse_catalog({"version": 1, "models": [_entry("t/m.onnx", data, {"url": served.as_uri()})]})
    assert fetch("tiny", dest=dest, catalog=good).installed == [dest / "t/m.onnx"]

    other = dest / "other"
    bad = parse_catalog({"version": 1, "models": [_entry("t/m.onnx", data + b"!", {"url": served.as_uri()})]})
    with pytest.raises(ModelError, match="refused t/m.onnx") as err:
        fetch("tiny", dest=other, catalog=bad)
    assert "nothing installed" in str(err.value)
    assert not (other / "t/m.onnx").exists() and not list((other / "t").glob("*"))  # no partial file left


def test_fetch_reports_derived_files_as_unavailable(tmp_path: Path) -> None:
    catalog = parse_catalog(
        {"version": 1, "models": [_entry("t/m.onnx", b"abc", {"derived": "converted by hand"})]}
    )
    report = fetch("tiny", dest=tmp_path / "cache", catalog=catalog)
    assert not report.ok and report.unavailable == ["t/m.onnx: no download (derived: converted by hand)"]


@pytest.mark.model
def test_cli_list_and_verify(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert cmd_list(argparse.Namespace()) == 0
    out = capsys.readouterr().out
    assert "yolox-nano" in out and "present" in out and "vigil models fetch" in out
    assert cmd_verify(argparse.Namespace(names=["yunet"])) == 0
    assert "1 file(s) checked, 0 corrupt" in capsys.readouterr().out

    root = tmp_path / "root"
    (root / YUNET).parent.mkdir(parents=True)
    (root / YUNET).write_bytes(b"not an onnx file")
    monkeypatch.setenv("VIGIL_MODELS", str(root))
    assert cmd_verify(argparse.Namespace(names=["yunet"])) == 4
    assert "CORRUPT" in capsys.readouterr().out
    assert cmd_list(argparse.Namespace(names=["yolox-nano"])) == 0
    assert "missing" in capsys.readouterr().out
