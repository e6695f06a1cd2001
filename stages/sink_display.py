"""`sink.display`: show `frame.view` in an OpenCV window per source; `q` or Esc ends the run."""

from __future__ import annotations

import os
import re
import sys

import cv2
from pydantic import Field

from pipeline.errors import ConfigError
from pipeline.frame import Frame
from pipeline.stage import Options, Stage, StageContext, register

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27 = Esc


def gui_problem() -> str | None:
    """Why OpenCV cannot open a window here, or None when it can."""
    framework = cv2.currentUIFramework() if hasattr(cv2, "currentUIFramework") else None
    headless = framework == "" or (framework is None and re.search(r"GUI:\s+NONE", cv2.getBuildInformation()))
    if headless:
        return (
            "this OpenCV build has no GUI (the opencv-python-headless wheel): to use sink.display, "
            "`pip uninstall opencv-python-headless` then `pip install 'opencv-python<5'`"
        )
    # Qt/GTK abort the whole process without a display, so check before opening a window.
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return (
            "no display to show windows on (DISPLAY and WAYLAND_DISPLAY are not set); use sink.video instead"
        )
    return None


class DisplaySinkOptions(Options):
    """Options of `sink.display`."""

    title: str = Field(
        "vigil: {source}", description="window title; {source} is the source id (one window each)"
    )
    max_width: int = Field(
        1280, ge=0, description="shrink wider frames to this width in px for display (0 = never)"
    )
    wait_ms: int = Field(
        1,
        ge=1,
        le=10_000,
        description="ms to wait for a key press after each frame (OpenCV's waitKey; at most 10000)",
    )


@register("sink.display")
class DisplaySink(Stage[DisplaySinkOptions]):
    """Show frames in a window. Pressing q or Esc (or closing the window) sets `stop_requested`,
    which the runner reads to end the run. Needs the GUI wheel `opencv-python<5`, not the headless
    one. Frames pass through unchanged."""

    stateful = True

    def __init__(self, options: DisplaySinkOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self.stop_requested = False
        self._windows: dict[str, str] = {}

    def setup(self) -> None:
        problem = gui_problem()
        if problem:
            raise ConfigError(problem)

    def _window(self, source: str) -> str:
        if source not in self._windows:
            name = self.options.title.replace("{source}", source)
            try:
                cv2.namedWindow(name, cv2.WINDOW_NORMAL)
            except cv2.error as exc:
                raise ConfigError(f"sink.display cannot open a window: {exc.err}") from exc
            self._windows[source] = name
        return self._windows[source]

    def process(self, frame: Frame) -> Frame:
        name = self._window(frame.source)
        image = frame.view
        width = self.options.max_width
        if width and image.shape[1] > width:
            image = cv2.resize(
                image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA
            )
        cv2.imshow(name, image)
        key = cv2.waitKey(self.options.wait_ms) & 0xFF
        closed = cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) < 1
        if key in QUIT_KEYS or closed:
            if not self.stop_requested:
                self.log.info("display closed (%s): stopping", "window closed" if closed else "key")
            self.stop_requested = True
        return frame

    def end_stream(self, source: str) -> list[Frame]:
        name = self._windows.pop(source, None)
        if name is not None:
            cv2.destroyWindow(name)
        return []

    def close(self) -> None:
        if self._windows:
            cv2.destroyAllWindows()
            cv2.waitKey(1)
            self._windows.clear()
