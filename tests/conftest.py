"""Shared fixtures: real media and models from ../shared (relative to the repo).

Where they come from, and what happens when they are not there:
- VIGIL_MODELS unset: models from ../shared/models, media from ../shared/media. Missing, the tests
  that need them (marked `model`, or using the `models_dir` / `media` fixtures) are skipped, each
  with the same reason, counted again at the end of the run.
- VIGIL_MODELS set (CI sets it): the caller says the shared data is there, so a folder it names
  that does not exist, or a missing ../shared/media, stops pytest at once with a usage error
  instead of hundreds of failures or a green run that tested nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()
MEDIA = SHARED / "media"
MODELS = SHARED / "models"

NO_MODELS = "needs ../shared/models beside the repo, or VIGIL_MODELS"
NO_MEDIA = "needs ../shared/media beside the repo"

_MODELS_KEY = pytest.StashKey[Path | None]()  # the models folder the tests use, None when absent
_MEDIA_KEY = pytest.StashKey[Path | None]()


def _models_from_env() -> list[Path] | None:
    """The folders VIGIL_MODELS lists (a path list, empty entries ignored); None when it is unset."""
    value = os.environ.get("VIGIL_MODELS")
    if value is None:
        return None
    return [Path(p).resolve() for p in value.split(os.pathsep) if p]


def pytest_configure(config: pytest.Config) -> None:
    listed = _models_from_env()
    if listed is None:
        models = MODELS if MODELS.is_dir() else None
        if models is not None:
            os.environ["VIGIL_MODELS"] = str(models)  # what the resolver reads inside the tests
    else:
        missing = [str(p) for p in listed if not p.is_dir()]
        if missing or not listed:
            raise pytest.UsageError(
                f"VIGIL_MODELS={os.environ['VIGIL_MODELS']!r}: no such folder {', '.join(missing) or '(empty)'}. "
                "Point it at the shared models (CI: ../shared/models), or unset it to skip the tests that need them."
            )
        if not MEDIA.is_dir():
            raise pytest.UsageError(
                f"VIGIL_MODELS is set but the shared media folder {MEDIA} is missing. "
                "Put ../shared beside the repo, or unset VIGIL_MODELS to skip the tests that need it."
            )
        models = listed[0]
        # Absolute, so tests that change directory (and their subprocesses) still find the models.
        os.environ["VIGIL_MODELS"] = os.pathsep.join(map(str, listed))
    config.stash[_MODELS_KEY] = models
    config.stash[_MEDIA_KEY] = MEDIA if MEDIA.is_dir() else None


def pytest_report_header(config: pytest.Config) -> str:
    models, media = config.stash[_MODELS_KEY], config.stash[_MEDIA_KEY]
    return (
        f"shared data: models {models or f'missing ({NO_MODELS})'}; media {media or f'missing ({NO_MEDIA})'}"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_models = config.stash[_MODELS_KEY] is None
    no_media = config.stash[_MEDIA_KEY] is None
    for item in items:
        fixtures = getattr(item, "fixturenames", ())  # only test functions have fixtures
        # fixturenames is the whole closure: a test that reaches `media` through another fixture counts
        wants_models = item.get_closest_marker("model") is not None or "models_dir" in fixtures
        if no_models and wants_models:
            item.add_marker(pytest.mark.skip(reason=NO_MODELS))
        elif no_media and "media" in fixtures:
            item.add_marker(pytest.mark.skip(reason=NO_MEDIA))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        for known in (NO_MODELS, NO_MEDIA):
            if known in reason:
                counts[known] = counts.get(known, 0) + 1
    for reason, n in counts.items():
        terminalreporter.write_line(f"{n} tests skipped: {reason}", yellow=True)


@pytest.fixture(scope="session")
def media(pytestconfig: pytest.Config) -> Path:
    found: Path | None = pytestconfig.stash[_MEDIA_KEY]
    if found is None:
        pytest.skip(NO_MEDIA)
    return found


@pytest.fixture(scope="session")
def models_dir(pytestconfig: pytest.Config) -> Path:
    found: Path | None = pytestconfig.stash[_MODELS_KEY]
    if found is None:
        pytest.skip(NO_MODELS)
    return found


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="record the golden JSON outputs again instead of comparing",
    )
