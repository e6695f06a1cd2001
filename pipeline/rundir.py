"""The folder a run keeps its ipc sockets in, and the clean-up of folders of runs that died."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

RUN_DIR_PREFIX = "vigil-run-"  # + pid: sockets of one run, under the temp folder


def make_run_dir() -> str:
    """A new socket folder for this process (the folders of dead runs are removed first)."""
    remove_stale_run_dirs()
    return tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-")


def remove_stale_run_dirs(root: str | None = None) -> list[Path]:
    """Remove the socket folders of runs whose process is gone (killed before it could clean up)."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*"):
        pid = path.name[len(RUN_DIR_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
