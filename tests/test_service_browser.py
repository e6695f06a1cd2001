"""The web page in headless Debian chromium (Playwright drives it; no downloaded browser)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")

from pipeline.config import config_from_dict  # noqa: E402
from pipeline.service.embedded import EmbeddedService  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
REPO = Path(__file__).resolve().parents[1]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium); CI requires it",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api") if not os.environ.get("CI") else None
if sync_api is None:
    import playwright.sync_api as sync_api  # in CI a missing Playwright is a failure, not a skip


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_shows_live_views_and_the_stream_list(tmp_path):
    config = config_from_dict(
        {
            "version": 1,
            "sources": [
                {
                    "id": "door",
                    "uri": str(REPO / "samples/face_male_smiling.mp4"),
                    "loop": True,
                    "realtime": True,
                },
                {"id": "desk", "uri": "synthetic://320x240?fps=15&frames=60", "loop": True, "realtime": True},
            ],
            "stages": [{"id": "faces", "kind": "detect.haar"}, {"id": "draw", "kind": "render"}],
        }
    )
    shot = tmp_path / "page.png"
    with EmbeddedService(config, tmp_path / "out") as svc, sync_api.sync_playwright() as pw:
        # a fresh profile per run (Playwright passes it as --user-data-dir)
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=FLAGS, headless=True,
            viewport={"width": 1280, "height": 720},
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.goto(svc.url + "/")
            page.wait_for_selector("#streams tr >> text=door")
            page.wait_for_selector("#streams tr >> text=running")
            # every live view has decoded at least one MJPEG frame
            page.wait_for_function(
                "() => { const imgs = [...document.querySelectorAll('#grid img')];"
                " return imgs.length === 2 && imgs.every(i => i.naturalWidth > 0); }",
                timeout=20000,
            )
            time.sleep(1.0)
            page.screenshot(path=str(shot))
            widths = page.eval_on_selector_all("#grid img", "imgs => imgs.map(i => i.naturalWidth)")
            text = page.inner_text("#streams")
        finally:
            browser.close()
    assert sorted(widths) == [320, 480]  # the synthetic source and the sample clip
    assert "door" in text and "desk" in text and "running" in text
    _assert_not_blank(shot)
    keep = os.environ.get("VIGIL_SCREENSHOT")  # to look at it: VIGIL_SCREENSHOT=/tmp/page.png
    if keep:
        shutil.copy(shot, keep)


def _assert_not_blank(path: Path) -> None:
    import cv2

    image = cv2.imread(str(path))
    grid = image[60:400, 10:900]  # where the live views are
    assert image is not None and float(grid.std()) > 20, "the live views look blank"
