"""Secrets (passwords, HMAC keys) read from files, so they never sit in a pipeline file or a log."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ConfigError


def read_secret(path: str, what: str) -> str:
    """The first line of a secret file, stripped; the error names the file, never its content."""
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if not lines or not lines[0].strip():
        raise ConfigError(f"{what}: {path} is empty")
    return lines[0].strip()
