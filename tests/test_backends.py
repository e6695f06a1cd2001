"""Inference backends on real models: tensor specs, batching, async, thread budget, agreement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.backends import load_backend
from models.backends.opencv_dnn import _config_file, _output_order
from models.backends.selection import Hardware, rank_backends
from pipeline.errors import ModelError

REPO = Path(__file__).resolve().parents[1]
YOLOX = "yolo/yolox_nano.onnx"
PEDESTRIAN_OUTPUTS = ["detection_boxes:0", "detection_classes:0", "detection_scores:0", "num_detections:0"]


def _hw(**changes) -> Hardware:
    base = dict(
        cpu_vendor="AuthenticAMD",
        cpu_name="AMD EPYC",
        nvidia_gpu=False,
        tensorflow_gpu=False,
        opencv_cuda=False,
        openvino_devices=("CPU",),
        runtimes=frozenset({"openvino", "tensorflow", "litert"}),
    )
    return Hardware(**{**base, **changes})


def test_auto_prefers_tensorflow_on_an_nvidia_gpu_with_a_tf_format() -> None:
    hw = _hw(nvidia_gpu=True, tensorflow_gpu=True)
    ranked = rank_backends(["openvino", "opencv", "tensorflow"], ["savedmodel"], hw)
    assert ranked[0][0] == "tensorflow" and "NVIDIA" in ranked[0][1]
    # a TFLite-only model gains nothing from the GPU through LiteRT: OpenVINO stays first
    assert rank_backends(["openvino", "tensorflow"], ["tflite"], hw)[0][0] == "openvino"


def test_auto_prefers_openvino_on_intel_and_as_the_cpu_path() -> None:
    intel = rank_backends(
        ["tensorflow", "openvino"],
        ["tflite"],
        _hw(cpu_vendor="GenuineIntel", openvino_devices=("CPU", "GPU")),
    )
    assert intel[0][0] == "openvino" and "Intel" in intel[0][1]
    assert [b for b, _ in rank_backends(["opencv", "tensorflow", "openvino"], ["savedmodel"], _hw())] == [
        "openvino",
        "tensorflow",
        "opencv",
    ]
    no_ov = rank_backends(["openvino", "tensorflow"], ["tflite"], _hw(runtimes=frozenset({"litert"})))
    assert [b for b, _ in no_ov] == ["tensorflow"]
    assert rank_backends(["openvino", "opencv"], [], _hw(nvidia_gpu=True, opencv_cuda=True))[0][0] == "opencv"


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the sha256 verification cache out of the user's home."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def x_nchw() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)


@pytest.fixture(scope="module")
def ov_yolox(models_dir: Path):
    return load_backend(models_dir / YOLOX, "openvino", "CPU", threads=1, precision="f32")


@pytest.mark.model
def test_openvino_specs_info_and_thread_budget(ov_yolox) -> None:
    assert [(s.name, s.shape) for s in ov_yolox.inputs] == [("images", (1, 3, 416, 416))]
    assert [(s.name, s.shape, s.dtype) for s in ov_yolox.outputs] == [("output", (1, 3549, 85), np.float32)]
    info = ov_yolox.info
    assert (info.backend, info.device, info.precision, info.threads) == ("openvino", "CPU", "f32", 1)
    assert info.runtime.startswith("openvino 20")


@pytest.mark.model
def test_openvino_batch_split_and_async_queue_match_single_runs(ov_yolox, x_nchw: np.ndarray) -> None:
    batch = np.concatenate([x_nchw, x_nchw[:, :, ::-1].copy(), x_nchw * 0.5])
    singles = [ov_yolox.infer(batch[i : i + 1])["output"] for i in range(3)]
    split = ov_yolox.infer(batch)["output"]  # static batch 1: split into 3 async requests
    assert split.shape == (3, 3549, 85)
    many = ov_yolox.infer_many([batch[i : i + 1] for i in range(3)])
    for i in range(3):
        np.testing.assert_allclose(split[i : i + 1], singles[i], atol=1e-5)
        np.testing.assert_allclose(many[i]["output"], singles[i], atol=1e-5)


@pytest.mark.model
def test_openvino_throughput_mode_uses_the_optimal_request_count(
    models_dir: Path, x_nchw: np.ndarray
) -> None:
    backend = load_backend(
        models_dir / YOLOX, "openvino", "AUTO", threads=2, mode="throughput", precision="f32"
    )
    assert backend.info.requests >= 1 and backend.info.extra["mode"] == "throughput"
    assert backend.info.device == "CPU" and backend.info.threads == 2  # AUTO reports where it ran
    outs = backend.infer_many([x_nchw] * 4)
    assert len(outs) == 4 and all(o["output"].shape == (1, 3549, 85) for o in outs)


@pytest.mark.model
def test_openvino_fixes_dynamic_dims_and_names_outputs(models_dir: Path) -> None:
    graph = models_dir / "ssd/pedestrian_ssdlite_frozen_inference_graph.pb"
    backend = load_backend(graph, "openvino", "CPU", outputs=PEDESTRIAN_OUTPUTS, input_shape=[1, 300, 300, 3])
    assert [s.name for s in backend.outputs] == PEDESTRIAN_OUTPUTS
    assert backend.inputs[0].shape == (None, 300, 300, 3) and backend.inputs[0].dtype == np.uint8


@pytest.mark.model
def test_opencv_dnn_matches_openvino(models_dir: Path, ov_yolox, x_nchw: np.ndarray) -> None:
    cv = load_backend(models_dir / YOLOX, "opencv", "CPU", threads=2)
    assert (cv.info.backend, cv.info.device, cv.max_batch) == ("opencv", "CPU", 1)
    np.testing.assert_allclose(cv.infer(x_nchw)["output"], ov_yolox.infer(x_nchw)["output"], atol=1e-3)
    with pytest.raises(ModelError, match="CUDA"):
        load_backend(models_dir / YOLOX, "opencv", "cuda:0")
    cv.close()
    cv.close()  # idempotent
    with pytest.raises(ModelError, match="after close"):
        cv.infer(x_nchw)


def test_opencv_dnn_finds_the_sibling_config_and_orders_outputs(tmp_path: Path) -> None:
    weights, cfg = tmp_path / "net.weights", tmp_path / "net.cfg"
    weights.write_bytes(b"")
    assert _config_file(weights, None) is None  # no sibling yet
    cfg.write_text("")
    assert _config_file(weights, None) == cfg
    assert _config_file(weights, "") is None  # an explicit empty config is kept empty
    assert _config_file(tmp_path / "m.onnx", tmp_path / "x.cfg") == tmp_path / "x.cfg"
    assert _output_order(["a", "b", "c"], None) == ["a", "b", "c"]
    assert _output_order(["a", "b", "c"], ["c", "zz", "a"]) == ["c", "a", "b"]


@pytest.mark.model
def test_litert_matches_openvino_on_blazeface(models_dir: Path) -> None:
    path = models_dir / "face_detection/blazeface/face_detection_back.tflite"
    lite = load_backend(path, "tensorflow", threads=1)
    ov = load_backend(path, "openvino", "CPU", precision="f32")
    assert lite.info.runtime.startswith("ai-edge-litert") and lite.info.threads == 1
    x = np.random.default_rng(1).uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
    a, b = lite.infer(x), ov.infer(x)
    assert set(a) == set(b) == {"regressors", "classificators"}
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=2e-3)


@pytest.mark.model
def test_litert_resizes_a_dynamic_batch(models_dir: Path) -> None:
    lite = load_backend(models_dir / "age_gender/ssrnet_imdb/ssrnet_age_imdb.tflite", "tensorflow")
    assert lite.max_batch is None
    crops = np.random.default_rng(2).uniform(0, 255, (3, 64, 64, 3)).astype(np.float32)
    batch = lite.infer(crops)["StatefulPartitionedCall_1:0"]
    single = lite.infer(crops[1:2])["StatefulPartitionedCall_1:0"]
    assert batch.shape == (3, 1)
    np.testing.assert_allclose(batch[1:2], single, rtol=1e-4)


@pytest.fixture(scope="module")
def tf_savedmodel(models_dir: Path):
    return load_backend(models_dir / "yolo/yolox_nano_tf_savedmodel", "tensorflow", "AUTO", threads=2)


@pytest.mark.model
@pytest.mark.tensorflow
@pytest.mark.slow
def test_tensorflow_savedmodel_matches_openvino(tf_savedmodel, ov_yolox, x_nchw: np.ndarray) -> None:
    assert tf_savedmodel.info.backend == "tensorflow" and tf_savedmodel.info.device.startswith(("CPU", "GPU"))
    assert tf_savedmodel.inputs[0].shape == (1, 416, 416, 3)
    out = tf_savedmodel.infer(x_nchw.transpose(0, 2, 3, 1))["output_0"]
    np.testing.assert_allclose(out, ov_yolox.infer(x_nchw)["output"], atol=1e-3)


@pytest.mark.model
@pytest.mark.tensorflow
@pytest.mark.slow
def test_tensorflow_frozen_graph_and_keras_match_openvino(models_dir: Path, tf_savedmodel) -> None:
    graph = models_dir / "ssd/pedestrian_ssdlite_frozen_inference_graph.pb"
    tf = load_backend(graph, "tensorflow", inputs=["image_tensor:0"], outputs=PEDESTRIAN_OUTPUTS)
    ov = load_backend(graph, "openvino", "CPU", outputs=PEDESTRIAN_OUTPUTS, precision="f32")
    image = np.random.default_rng(3).integers(0, 255, (1, 300, 300, 3), dtype=np.uint8)
    a, b = tf.infer(image), ov.infer(image)
    np.testing.assert_allclose(a["detection_scores:0"], b["detection_scores:0"], atol=1e-3)

    keras = load_backend(models_dir / "emotion/fer2013_mini_xception/emotion_model.hdf5", "tensorflow")
    ir = load_backend(
        models_dir / "emotion/fer2013_mini_xception/emotion_model.xml", "openvino", "CPU", precision="f32"
    )
    faces = np.random.default_rng(4).uniform(-1, 1, (2, 64, 64, 1)).astype(np.float32)
    stacked = keras.infer_many([faces[:1], faces[1:]])  # dynamic batch: one stacked call
    assert keras.outputs[0].name == "predictions" and len(stacked) == 2
    for i in range(2):
        np.testing.assert_allclose(
            stacked[i]["predictions"], ir.infer(faces[i : i + 1])["output_0"], atol=1e-4
        )
    with pytest.raises(ModelError, match="GPU"):
        load_backend(models_dir / "emotion/fer2013_mini_xception/emotion_model.hdf5", "tensorflow", "cuda:3")


@pytest.mark.model
def test_load_backend_refuses_what_a_runtime_cannot_read(models_dir: Path) -> None:
    with pytest.raises(ModelError, match="cannot run tflite"):
        load_backend(models_dir / "face_detection/blazeface/face_detection_back.tflite", "opencv")
    with pytest.raises(ModelError, match="unknown backend"):
        load_backend(models_dir / YOLOX, "tensorrt")
    with pytest.raises(ModelError, match="CUDA device"):
        load_backend(models_dir / YOLOX, "openvino", "cuda:0")
    with pytest.raises(ModelError, match="not found"):
        load_backend(models_dir / "nothing.onnx", "openvino")


@pytest.mark.model
def test_openvino_detector_path_never_imports_tensorflow(models_dir: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "import models, models.detectors, pipeline.cli\n"
        "from models.detector_factory import build_detector\n"
        "d = build_detector('yolox-nano', backend='openvino', device='CPU')\n"
        "d.detect(np.zeros((240, 320, 3), np.uint8))\n"
        "d2 = build_detector('blazeface', backend='tensorflow')\n"  # LiteRT needs no TensorFlow either
        "d2.detect(np.zeros((240, 320, 3), np.uint8))\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {"VIGIL_MODELS": str(models_dir), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.model
def test_auto_falls_back_to_the_backend_whose_files_are_present(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import models.loader as loader

    detect = "ssd/ssd_mobilenet_v1_coco_quant_detect.tflite"
    (tmp_path / "ssd").mkdir()
    (tmp_path / detect).symlink_to(models_dir / detect)
    monkeypatch.setenv("VIGIL_MODELS", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(
        loader, "rank_backends", lambda *a, **k: [("openvino", "fastest"), ("tensorflow", "cpu")]
    )
    choice = loader.choose("ssd-mobilenet-v1-coco", "auto")
    assert (choice.backend, choice.resolved.format.id) == ("tensorflow", "detect")
    assert "openvino files are not present" in choice.reason


def test_openvino_compile_config_puts_cpu_knobs_where_the_device_reads_them() -> None:
    from types import SimpleNamespace

    from models.backends.openvino import _compile_config

    core = SimpleNamespace(available_devices=["CPU", "GPU"])
    assert _compile_config(core, "CPU", "throughput", 2, "f32") == {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "INFERENCE_NUM_THREADS": 2,
        "INFERENCE_PRECISION_HINT": "f32",
    }
    assert _compile_config(core, "GPU.0", "latency", 2, "f16") == {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f16",
    }
    auto = _compile_config(core, "AUTO", "odd", 4, "auto")
    assert auto == {"PERFORMANCE_HINT": "LATENCY", "DEVICE_PROPERTIES": {"CPU": {"INFERENCE_NUM_THREADS": 4}}}
    assert _compile_config(SimpleNamespace(available_devices=["NPU"]), "AUTO", "latency", 4, None) == {
        "PERFORMANCE_HINT": "LATENCY"
    }


@pytest.mark.model
def test_openvino_image_input_converts_uint8_bgr_inside_the_model(models_dir: Path, ov_yolox) -> None:
    """uint8 NHWC BGR in, the PrePostProcessor does layout and type: same outputs as the
    float32 NCHW tensor prepared in Python (issue 16)."""
    from models.backends import ImageInput

    pixels = np.random.default_rng(1).integers(0, 256, (1, 416, 416, 3), dtype=np.uint8)
    packed = load_backend(
        models_dir / YOLOX, "openvino", "CPU", threads=1, precision="f32", image_input=ImageInput("NCHW")
    )
    assert packed.image_input == ImageInput("NCHW") and ov_yolox.image_input is None
    assert packed.inputs[0].shape == (1, 416, 416, 3) and packed.inputs[0].dtype == np.uint8
    want = ov_yolox.infer(pixels.transpose(0, 3, 1, 2).astype(np.float32))["output"]
    np.testing.assert_allclose(packed.infer(pixels)["output"], want, atol=1e-4)


@pytest.mark.model
def test_openvino_image_input_reverses_channels_and_normalises(models_dir: Path) -> None:
    from models.backends import ImageInput

    path = models_dir / "face_detection/blazeface/face_detection_short_range.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    plain = load_backend(path, "openvino", "CPU", threads=1, precision="f32")
    packed = load_backend(
        path,
        "openvino",
        "CPU",
        threads=1,
        precision="f32",
        image_input=ImageInput("NHWC", True, 127.5, 127.5),
    )
    pixels = np.random.default_rng(2).integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
    ready = (pixels[..., ::-1].astype(np.float32) - 127.5) / 127.5
    want, got = plain.infer(ready), packed.infer(pixels)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-4)


@pytest.mark.model
def test_openvino_infer_many_pulls_feeds_from_a_generator(ov_yolox, x_nchw: np.ndarray) -> None:
    pulled: list[int] = []

    def feeds():
        for i in range(5):
            pulled.append(i)
            yield x_nchw * (1 - i / 10)

    outs = ov_yolox.infer_many(feeds())
    assert pulled == list(range(5)) and len(outs) == 5
    np.testing.assert_allclose(outs[3]["output"], ov_yolox.infer(x_nchw * 0.7)["output"], atol=1e-5)


def test_image_input_follows_the_catalog_input_spec() -> None:
    """Colour images of a fixed size get the in-runtime conversion; gray or size-less inputs keep
    the Python path (issue 16)."""
    from models.backends import ImageInput
    from models.catalog import InputSpec
    from models.loader import image_input

    yolox = InputSpec(size=(416, 416), layout="NCHW", colour="BGR", resize="letterbox")
    assert image_input(yolox) == ImageInput("NCHW", rgb=False, mean=0.0, std=1.0)
    blaze = InputSpec(size=(128, 128), layout="NHWC", colour="RGB", mean=127.5, std=127.5)
    assert image_input(blaze) == ImageInput("NHWC", rgb=True, mean=127.5, std=127.5)
    assert image_input(InputSpec(size=(64, 64), colour="GRAY")) is None
    assert image_input(InputSpec(size=None)) is None
