"""The progress bar as a terminal shows it: log lines whole, the final line once, live vs file fields."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
from collections.abc import Iterator

import pytest

from pipeline.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def rendered(raw: str) -> list[str]:
    """The lines a terminal would show: each '\\r' goes back to column 0 and overwrites."""
    lines = []
    for line in raw.split("\n"):
        cells: list[str] = []
        for part in line.split("\r"):
            cells[: len(part)] = part
        if text := "".join(cells).rstrip():
            lines.append(text)
    return lines


@contextlib.contextmanager
def terminal() -> Iterator[FakeTerminal]:
    """stderr is a terminal, and the root logger writes to it as `vigil run` sets it up.

    (Swapped inside the test body: pytest's capture puts its own sys.stderr back before each test.)
    """
    term = FakeTerminal()
    handler = logging.StreamHandler(term)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved = sys.stderr, root.handlers, root.level
    sys.stderr, root.handlers, root.level = term, [*root.handlers, handler], logging.INFO
    try:
        yield term
    finally:
        sys.stderr, root.handlers, root.level = saved


def test_a_log_line_is_whole_and_the_final_line_appears_once() -> None:
    with terminal() as term:
        handlers = list(logging.getLogger().handlers)
        with Progress(5) as bar:
            bar.update(2)
            logging.getLogger("vigil.test").warning("a log line in the middle of a run")
            bar.update(3)
            bar.close()  # closing early (the runner may) must not print the bar again on exit
        assert logging.getLogger().handlers == handlers  # logging is given back as it was
    lines = rendered(term.getvalue())
    assert lines[0] == "WARNING vigil.test: a log line in the middle of a run", lines
    assert len(lines) == 2, lines
    assert re.fullmatch(r"100%\|\S+\| 5/5 frames \[\d\d:\d\d<\d\d:\d\d, [\d.]+ fps\]", lines[1]), lines


@pytest.mark.parametrize("total", [None, 0, 100])
def test_a_live_source_shows_frames_and_fps_without_total_or_eta(total: int | None) -> None:
    with terminal() as term, Progress(total, live=total == 100) as bar:  # a stream's count means nothing
        bar.update(7)
    assert re.fullmatch(r"7 frames \[\d\d:\d\d, (\?|[\d.]+) fps\]", rendered(term.getvalue())[-1])


def test_quiet_or_not_a_terminal_prints_nothing() -> None:
    with terminal() as term:
        handlers = list(logging.getLogger().handlers)
        with Progress(5, disable=True) as bar:
            bar.update(5)
            assert logging.getLogger().handlers == handlers  # no bar, nothing to redirect
        term.isatty = lambda: False  # type: ignore[method-assign]
        with Progress(5) as bar:
            bar.update(5)
    assert term.getvalue() == ""
