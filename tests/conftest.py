"""Shared fixtures: real media and models from ../shared (relative to the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()
MEDIA = SHARED / "media"
MODELS = SHARED / "models"

# Tests and CI resolve weights from ../shared/models unless told otherwise.
os.environ.setdefault("VIGIL_MODELS", str(MODELS))


@pytest.fixture(scope="session")
def media() -> Path:
    if not MEDIA.is_dir():
        pytest.fail(f"shared media not found at {MEDIA}; tests expect ../shared beside the repo")
    return MEDIA


@pytest.fixture(scope="session")
def models_dir() -> Path:
    if not MODELS.is_dir():
        pytest.fail(f"shared models not found at {MODELS}; tests expect ../shared beside the repo")
    return MODELS
