"""The registry of stage kinds: entry points are the one way in, for built-ins and plugins alike."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import re
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import pipeline.stage as registry
import stages
from pipeline.errors import ConfigError
from pipeline.frame import Detections, Frame
from pipeline.stage import NotInstalledError, Stage, StageContext, get_kind, kinds, refresh_kinds

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def declared_in_pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["entry-points"][registry.ENTRY_POINT_GROUP])


def registered_in_stages() -> dict[str, str]:
    """kind -> "module:Class" for every class under stages/ that @register names."""
    found: dict[str, str] = {}
    for info in pkgutil.walk_packages(stages.__path__, "stages."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, Stage) and "kind" in cls.__dict__:
                assert cls.kind not in found, f"{cls.kind} is registered twice: {found[cls.kind]}, {cls}"
                found[cls.kind] = f"{cls.__module__}:{cls.__qualname__}"
    return found


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    refresh_kinds()
    yield
    refresh_kinds()


def install_plugin(folder: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """What `pip install` leaves: modules plus a `*.dist-info` with METADATA and entry_points.txt."""
    for module, code in modules.items():
        (folder / f"{module}.py").write_text(code)
    info = folder / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    lines = [f"{kind} = {target}" for kind, target in entry_points.items()]
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n" + "\n".join(lines) + "\n")


@pytest.fixture
def plugin_path(tmp_path: Path, fresh_registry: None) -> Iterator[Path]:
    """A folder on sys.path for plugins; the registry reads it again and forgets it afterwards."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        if str(tmp_path) in (getattr(sys.modules[name], "__file__", None) or ""):
            del sys.modules[name]


def test_every_registered_kind_is_an_entry_point_and_back() -> None:
    declared = declared_in_pyproject()
    assert registered_in_stages() == declared, "@register(...) under stages/ and pyproject.toml disagree"
    installed = {
        ep.name: ep.value
        for ep in metadata.distribution(registry.DISTRIBUTION).entry_points
        if ep.group == registry.ENTRY_POINT_GROUP
    }
    assert installed == declared, "package metadata is stale: run `pip install -e . --no-deps`"
    for kind, target in declared.items():
        cls = get_kind(kind)
        assert f"{cls.__module__}:{cls.__qualname__}" == target and cls.kind == kind
        assert issubclass(cls.Options, registry.Options) and cls.__doc__


def test_get_kind_imports_only_the_module_of_that_kind() -> None:
    import subprocess

    code = (
        "import sys; from pipeline.stage import get_kind; get_kind('sink.jsonl'); "
        "print(sorted(m for m in sys.modules if m.startswith('stages.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "['stages.sink_jsonl', 'stages.sink_paths']"


def test_unknown_kind_suggests_the_closest_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown stage kind 'detect.har'; did you mean detect.haar"):
        get_kind("detect.har")


def test_missing_own_metadata_says_to_install_in_one_line(
    monkeypatch: pytest.MonkeyPatch, fresh_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    monkeypatch.setattr(registry, "DISTRIBUTION", "vigil-analytics-never-installed")
    for lookup in (lambda: get_kind("detect.haar"), kinds):
        with pytest.raises(NotInstalledError) as err:
            lookup()
        assert "pip install -e ." in str(err.value) and "\n" not in str(err.value)
        assert "unknown" not in str(err.value)
    assert main(["stages"]) != 0
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_a_broken_plugin_is_logged_and_skipped(plugin_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    install_plugin(
        plugin_path,
        "vigil-broken",
        {
            "broken.import": "vigil_no_such_module:Thing",
            "broken.notstage": "vigil_odd:NOT_A_STAGE",
            "broken.mismatch": "vigil_odd:Named",
            "odd.subclass": "vigil_odd:Subclass",  # inherits Named's kind, declares its own
            "render": "vigil_odd:Named",  # a built-in name: the built-in wins
        },
        {
            "vigil_odd": "from pipeline import Stage, register\nNOT_A_STAGE = 3\n\n"
            "@register('other.name')\nclass Named(Stage):\n    pass\n\n"
            "class Subclass(Named):\n    pass\n"
        },
    )
    with caplog.at_level(logging.WARNING, logger="vigil"):
        found = kinds()
    assert not {"broken.import", "broken.notstage", "broken.mismatch"} & set(found)
    assert found["render"].__module__ == "stages.render" and "detect.haar" in found
    assert found["odd.subclass"].kind == "odd.subclass"
    log = caplog.text
    assert "broken.import" in log and "broken.notstage" in log and "not 'broken.mismatch'" in log
    assert "stage kind render is declared twice" in log
    with pytest.raises(ConfigError, match="'broken.import' .* failed to load: ModuleNotFoundError"):
        get_kind("broken.import")
    assert caplog.text.count("broken.import") == 1  # tried and reported once


# -- the README's "Write your own stage" example, run as the plugin it describes


def readme_blocks(section: str) -> dict[str, str]:
    """The fenced code blocks (language -> code) of one `## ` section of README.md."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return {lang: code for lang, code in re.findall(r"```(\w+)\n(.*?)```", body, re.S)}


def test_the_readme_stage_example_plugs_in_and_runs(plugin_path: Path) -> None:
    blocks = readme_blocks("Write your own stage")
    code, project = blocks["python"], tomllib.loads(blocks["toml"])["project"]
    assert len(code.splitlines()) < 50
    entry_points = project["entry-points"][registry.ENTRY_POINT_GROUP]
    ((kind, target),) = entry_points.items()
    module = target.split(":")[0]
    install_plugin(plugin_path, project["name"], entry_points, {module: code})

    cls = get_kind(kind)
    assert cls.kind == kind and kind in kinds()
    options = cls.Options.model_validate({"kernel": 15})
    stage = cls(options, StageContext(stage_id="blur"))
    assert stage.options is options and not cls.is_stateful(options)

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), np.uint8)
    image.setflags(write=False)
    det = Detections.create([[20, 30, 70, 90], [100, 10, 150, 60]], label=["face", "person"])
    frame = Frame(source="cam", seq=0, pts=0.0, wall=0.0, image=image, detections=det)
    out = stage.process(frame)
    assert out is not None and out.detections is det
    changed = np.any(out.image != image, axis=2)
    assert changed[30:90, 20:70].mean() > 0.9  # the face is blurred
    assert not changed[:, 90:].any() and not changed[:25].any()  # the person and the rest are not
