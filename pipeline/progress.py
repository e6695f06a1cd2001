"""The progress bar of a run: frames/total, fps and ETA for files; frames and fps for live sources.

Shown only on a terminal and without --quiet. While it is shown, console log lines go through
tqdm (`logging_redirect_tqdm`), so a log line is printed whole above the bar instead of splitting it.
"""

from __future__ import annotations

import contextlib
import sys
from types import TracebackType
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

FILE_FORMAT = "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} frames [{elapsed}<{remaining}, {fps}]"
LIVE_FORMAT = "{n_fmt} frames [{elapsed}, {fps}]"


class _FpsBar(tqdm):
    """tqdm with an `{fps}` field for `bar_format` ("25.3 fps", "? fps" before any time has passed)."""

    @property
    def format_dict(self) -> dict[str, Any]:
        fields: dict[str, Any] = super().format_dict
        rate = fields["rate"]  # smoothed; None until tqdm has two samples
        if rate is None and fields["elapsed"]:
            rate = (fields["n"] - fields["initial"]) / fields["elapsed"]
        fields["fps"] = "? fps" if rate is None else f"{rate:.1f} fps"
        return fields


class Progress:
    """The run's progress bar, used as a context manager around the frame loop.

    total: frames expected (files); None or 0 when unknown.
    disable: no bar at all (--quiet); there is none either when stderr is not a terminal.
    live: the sources are cameras/streams: show frames and fps only (a total and an ETA
    mean nothing there). A missing total implies it.
    """

    def __init__(self, total: int | None, disable: bool = False, *, live: bool = False) -> None:
        live = live or not total or total < 0
        self.bar = _FpsBar(
            total=None if live else total,
            unit="frame",
            bar_format=LIVE_FORMAT if live else FILE_FORMAT,
            dynamic_ncols=True,
            file=sys.stderr,
            disable=disable or not sys.stderr.isatty(),
            smoothing=0.1,
        )
        self._redirect = contextlib.ExitStack()
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        """Print the bar's final line (once, however often this is called) and give logging back."""
        if self._closed:
            return
        self._closed = True
        # Close before leaving the redirect, so a log line from another thread cannot land in
        # between and leave a half-drawn bar behind.
        self.bar.close()
        self._redirect.close()

    def __enter__(self) -> Progress:
        if not self.bar.disable:
            self._redirect.enter_context(logging_redirect_tqdm(tqdm_class=_FpsBar))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
