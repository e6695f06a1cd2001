"""Errors a user can act on. The CLI prints them as one line (no traceback unless --debug)."""

from __future__ import annotations


class VigilError(Exception):
    """Base: a problem with a clear message for the user."""

    exit_code = 1


class ConfigError(VigilError):
    """The pipeline file or a command-line override is wrong."""

    exit_code = 2


class SourceError(VigilError):
    """A source cannot be opened or read."""

    exit_code = 3


class ModelError(VigilError):
    """A model file is missing, corrupt, or cannot run on the requested backend."""

    exit_code = 4


class StageError(VigilError):
    """A stage failed and the run was told to stop (`on_error: stop`)."""

    exit_code = 5


class OutputError(VigilError):
    """An output could not be written (disk full, read-only, removed): the run stops, whatever
    the stage's `on_error`, so it never reports files it could not write."""

    exit_code = 7
