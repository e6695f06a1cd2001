"""A progress bar for files (total known) with fps and ETA; silent when not a TTY or --quiet."""

from __future__ import annotations

import sys
from types import TracebackType

from tqdm import tqdm


class Progress:
    def __init__(self, total: int | None, disable: bool = False) -> None:
        self.bar = tqdm(
            total=total,
            unit="frame",
            dynamic_ncols=True,
            file=sys.stderr,
            disable=disable or not sys.stderr.isatty(),
            smoothing=0.1,
        )

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.bar.close()
