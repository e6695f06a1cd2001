"""How vigil is installed: the version and the pip command a hint gives for an extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline import installation
from pipeline.errors import ModelError

REPO = Path(__file__).resolve().parents[1]


def test_a_checkout_is_recognised_by_its_pyproject(tmp_path, monkeypatch):
    assert installation.source_checkout() == REPO  # the tests run from the repository
    monkeypatch.setattr(installation, "_ROOT", tmp_path)  # as in site-packages: no pyproject.toml
    installation.source_checkout.cache_clear()
    try:
        assert installation.source_checkout() is None
        (tmp_path / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
        installation.source_checkout.cache_clear()
        assert installation.source_checkout() is None
    finally:
        installation.source_checkout.cache_clear()


def test_extra_hint_for_an_installed_wheel(monkeypatch):
    monkeypatch.setattr(installation, "source_checkout", lambda: None)
    assert installation.pip_install_extra("tensorflow") == 'pip install "vigil-analytics[tensorflow]"'


def test_extra_hint_for_a_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(installation, "source_checkout", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)
    assert installation.pip_install_extra("tensorflow") == 'pip install -e ".[tensorflow]"'
    monkeypatch.chdir(tmp_path.parent)  # elsewhere: say where to run it
    assert installation.pip_install_extra("tensorflow") == f'pip install -e ".[tensorflow]" (in {tmp_path})'


@pytest.mark.parametrize(
    "checkout, expected",
    [(None, 'pip install "vigil-analytics[tensorflow]"'), (REPO, 'pip install -e ".[tensorflow]"')],
)
def test_missing_tensorflow_names_the_fitting_command(monkeypatch, checkout, expected):
    from models.backends import tensorflow as tf_backend

    monkeypatch.setattr(installation, "source_checkout", lambda: checkout)
    monkeypatch.chdir(REPO)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` raises ImportError
    with pytest.raises(ModelError, match="needs TensorFlow") as err:
        tf_backend._import_tf()
    assert expected in str(err.value) and "backend: openvino" in str(err.value)


def test_version_without_the_distribution(monkeypatch):
    from importlib import metadata

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(installation.metadata, "version", missing)
    assert installation.version().startswith("unknown (vigil-analytics is not installed; running from ")
