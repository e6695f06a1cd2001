"""How this copy of vigil is installed: its version and the pip command that adds an extra.

A user who cloned the repository needs `pip install -e ".[tensorflow]"`; a user who installed
the wheel needs `pip install "vigil-analytics[tensorflow]"`. Hints name the one that fits.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "vigil-analytics"
# The repository root when the code runs from a checkout (editable install or plain source tree).
_ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def source_checkout() -> Path | None:
    """The checkout vigil runs from (a directory whose pyproject.toml names this project), or None."""
    try:
        text = (_ROOT / "pyproject.toml").read_text()
    except OSError:
        return None
    # a line match, not a TOML parser: tomllib is 3.11+ and we support 3.10
    return _ROOT if re.search(rf'^name\s*=\s*"{DISTRIBUTION}"', text, re.MULTILINE) else None


def version() -> str:
    """The installed distribution's version, e.g. '0.1.0 (source checkout /src/vigil)'."""
    checkout = source_checkout()
    where = f" (source checkout {checkout})" if checkout else ""
    try:
        return metadata.version(DISTRIBUTION) + where
    except metadata.PackageNotFoundError:
        return f"unknown ({DISTRIBUTION} is not installed; running from {checkout or _ROOT})"


def pip_install_extra(extra: str) -> str:
    """The pip command that adds an optional extra, in the form that fits this installation."""
    checkout = source_checkout()
    if checkout is None:
        return f'pip install "{DISTRIBUTION}[{extra}]"'
    command = f'pip install -e ".[{extra}]"'
    return command if Path.cwd().resolve() == checkout else f"{command} (in {checkout})"
