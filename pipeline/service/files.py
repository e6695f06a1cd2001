"""Event files under the run's output folder (snapshots, clips) for the service page's links.

Only pictures and clips are served, only from inside the output folder: results, summaries
and anything a `..` or a symlink would reach outside it are not found.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

SERVED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".mp4"})


def output_file(root: Path, relative: str) -> Path | None:
    """The file `relative` names inside `root` when the page may link to it, else None."""
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or target.suffix.lower() not in SERVED_SUFFIXES:
        return None
    return target if target.is_file() else None


def file_endpoint(output_dir: Callable[[], Path]) -> Callable[[Request], Awaitable[Response]]:
    """`GET /files/{path}`: an event's snapshot or clip (paths as events give them)."""

    async def serve_file(request: Request) -> Response:
        found = output_file(output_dir(), request.path_params["path"])
        if found is None:
            return JSONResponse({"error": "no such snapshot or clip"}, status_code=404)
        return FileResponse(found)

    return serve_file
