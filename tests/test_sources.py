"""Sources: bad inputs end with a clear one-line error or a logged skip (never a traceback or a
hang), and the source options (every, resize, max_frames, synthetic, globs) do what they say.

Runs go through `pipeline.cli.main` in this process with a pytest timeout (a hang fails the test,
not the suite); stderr is captured at the file-descriptor level, so OpenCV/FFmpeg messages and
any thread traceback are seen too. One test runs the real `vigil` process end to end.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "tests" / "data" / "configs" / "record.yaml"  # capture -> sink.video + sink.jsonl
SAMPLE = REPO / "samples" / "faces_female_and_male.mp4"  # 56 frames, 12.5 fps, 480x270
SMILING = "videos/face_headpose_male_smiling_intel.mp4"  # index (moov) at the end of the file
FASTSTART = "videos/face_woman_emotions_pexels_wolfganglanger.mp4"  # index at the start: 472 frames
STILLS = "images"

pytestmark = pytest.mark.timeout(60)


@dataclass
class Outcome:
    returncode: int
    stderr: str  # what a user sees: printed errors, log lines, native library messages


Vigil = Callable[..., Outcome]


@pytest.fixture
def vigil(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Vigil:
    """`vigil run record.yaml --output OUT -q ARGS...`, in this process."""
    monkeypatch.chdir(REPO)  # the config names the sample clip relative to the repo

    def run(out: Path, *args: str) -> Outcome:
        capfd.readouterr()
        caplog.clear()
        code = main(["run", str(RECORD), "--output", str(out), "-q", *args])
        stderr = capfd.readouterr().err + caplog.text
        assert "Traceback" not in stderr, stderr
        assert "internal error" not in stderr, stderr
        return Outcome(code, stderr)

    return run


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def video_frames(path: Path) -> tuple[int, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n, size


def error_line(proc: Outcome | subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


# ------------------------------------------------------------------------------ bad inputs


def test_missing_file_exit_3_names_the_path(vigil: Vigil, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "clip.mp4"
    proc = vigil(tmp_path / "out", "--source", str(missing))
    assert proc.returncode == 3
    assert error_line(proc) == f"error: source 'cam0': no such file: {missing}"


def test_missing_file_as_a_process(tmp_path: Path) -> None:
    """The real command: exit status 3, one error line naming the path, no traceback."""
    missing = tmp_path / "clip.mp4"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pipeline.cli import entry; entry(sys.argv[1:])",
            "run",
            str(RECORD),
            "--source",
            str(missing),
            "--output",
            str(tmp_path / "out"),
            "-q",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stderr.strip() == f"error: source 'cam0': no such file: {missing}"


def test_random_bytes_named_mp4(vigil: Vigil, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    proc = vigil(tmp_path / "out", "--source", str(bad))
    assert proc.returncode == 3
    assert f"cannot open {bad} as a video" in error_line(proc)


def test_truncated_mp4_with_index_at_the_end_is_an_open_error(
    vigil: Vigil, media: Path, tmp_path: Path
) -> None:
    """Cut at 40%, an mp4 whose index (moov) is at the end has no index left: OpenCV cannot open it."""
    data = (media / SMILING).read_bytes()
    assert data.find(b"moov") > 0.9 * len(data)  # what this test relies on
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(0.4 * len(data))])
    proc = vigil(tmp_path / "out", "--source", str(cut))
    assert proc.returncode == 3
    assert f"cannot open {cut} as a video (corrupt, truncated" in error_line(proc)


def test_truncated_mp4_with_index_first_decodes_fewer_frames(
    vigil: Vigil, media: Path, tmp_path: Path
) -> None:
    """Cut at 40%, a fast-start mp4 still opens: the frames that are there are processed, the run
    completes, and a warning says the file ended early."""
    data = (media / FASTSTART).read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # what this test relies on
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(0.4 * len(data))])
    out = tmp_path / "out"
    proc = vigil(out, "--source", str(cut))
    assert proc.returncode == 0, proc.stderr
    lines = read_jsonl(out / "results.jsonl")
    assert 0.25 * 472 < len(lines) < 0.5 * 472
    assert [r["seq"] for r in lines] == list(range(len(lines)))
    assert f"ended after {len(lines)} of 472 announced frames (truncated?)" in proc.stderr
    assert video_frames(out / "video.mp4")[0] == len(lines)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["sources"]["cam0"]["frames_done"] == len(lines)


def test_empty_folder(vigil: Vigil, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = vigil(tmp_path / "out", "--source", str(empty))
    assert proc.returncode == 3
    assert error_line(proc).startswith(f"error: source 'cam0': no images found at {empty}")


@pytest.fixture
def stills(media: Path, tmp_path: Path) -> Iterator[Path]:
    """A folder of the shared face stills plus one file that is not an image, sorted in the middle."""
    folder = tmp_path / "stills"
    folder.mkdir()
    for image in sorted((media / STILLS).glob("*.jpg")):
        shutil.copy(image, folder / image.name)
    (folder / "face_n_broken.jpg").write_bytes(b"not a jpeg at all")
    yield folder


def test_folder_with_an_unreadable_image(vigil: Vigil, stills: Path, tmp_path: Path) -> None:
    files = sorted(p.name for p in stills.iterdir())
    bad = files.index("face_n_broken.jpg")
    assert 0 < bad < len(files) - 1
    out = tmp_path / "out"
    proc = vigil(out, "--source", str(stills))
    assert proc.returncode == 0, proc.stderr
    assert f"skipped unreadable image {stills / 'face_n_broken.jpg'}" in proc.stderr
    lines = read_jsonl(out / "results.jsonl")
    assert [r["seq"] for r in lines] == list(range(len(files) - 1))
    assert [r["index"] for r in lines] == [i for i in range(len(files)) if i != bad]  # position in the folder
    assert video_frames(out / "video.mp4")[0] == len(files) - 1


def test_image_glob(vigil: Vigil, stills: Path, tmp_path: Path) -> None:
    (stills / "extra.png").write_bytes(cv2.imencode(".png", np.zeros((20, 20, 3), np.uint8))[1].tobytes())
    out = tmp_path / "out"
    proc = vigil(out, "--source", str(stills / "face_w*.jpg"))
    assert proc.returncode == 0, proc.stderr
    expected = sorted(p.name for p in stills.glob("face_w*.jpg"))
    assert len(expected) >= 2
    assert len(read_jsonl(out / "results.jsonl")) == len(expected)
    assert "skipped" not in proc.stderr  # neither the broken .jpg nor the .png matched the glob


def test_refused_stream_url(vigil: Vigil, tmp_path: Path) -> None:
    proc = vigil(
        tmp_path / "out", "--source", "rtsp://127.0.0.1:9/none", "--set", "sources.0.open_timeout_s=2"
    )
    assert proc.returncode == 3
    assert (
        error_line(proc) == "error: source 'cam0': cannot open stream rtsp://127.0.0.1:9/none "
        "(check the address/index and that it is reachable)"
    )


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_silent_server_respects_open_timeout(vigil: Vigil, tmp_path: Path, scheme: str) -> None:
    """A server that accepts the connection and never answers: open_timeout_s bounds the wait."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        url = f"{scheme}://127.0.0.1:{server.getsockname()[1]}/cam"
        started = time.monotonic()
        proc = vigil(
            tmp_path / "out",
            "--source",
            url,
            "--set",
            "sources.0.open_timeout_s=1",
            "--set",
            "sources.0.read_timeout_s=1",
        )
        elapsed = time.monotonic() - started
    assert proc.returncode == 3
    assert f"cannot open stream {url}" in error_line(proc)
    # The bound is generous (a loaded machine is slow) but below OpenCV's own 30 s open timeout,
    # so it still shows that open_timeout_s, not OpenCV's default, ended the wait.
    assert elapsed < 20, f"took {elapsed:.1f}s with open_timeout_s=1"


def test_password_in_url_is_not_printed(vigil: Vigil, tmp_path: Path) -> None:
    proc = vigil(
        tmp_path / "out",
        "--source",
        "rtsp://admin:hunter2@127.0.0.1:9/none",
        "--set",
        "sources.0.open_timeout_s=1",
    )
    assert proc.returncode == 3
    assert "hunter2" not in proc.stderr
    assert "rtsp://admin:***@127.0.0.1:9/none" in error_line(proc)


# ------------------------------------------------------------------------------ source options


def test_every_third_frame(vigil: Vigil, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = vigil(out, "--set", "sources.0.every=3")
    assert proc.returncode == 0, proc.stderr
    lines = read_jsonl(out / "results.jsonl")
    assert [r["seq"] for r in lines] == list(range(19))  # ceil(56 / 3)
    assert [r["index"] for r in lines] == list(range(0, 56, 3))  # frame numbers in the source
    assert [r["pts"] for r in lines] == pytest.approx([i / 12.5 for i in range(0, 56, 3)], abs=1e-3)
    assert video_frames(out / "video.mp4")[0] == 19


def test_resize(vigil: Vigil, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = vigil(out, "--set", "sources.0.resize=[160, 90]")
    assert proc.returncode == 0, proc.stderr
    assert video_frames(out / "video.mp4") == (56, (160, 90))
    assert len(read_jsonl(out / "results.jsonl")) == 56


def test_max_frames(vigil: Vigil, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = vigil(out, "--set", "sources.0.max_frames=10")
    assert proc.returncode == 0, proc.stderr
    assert [r["seq"] for r in read_jsonl(out / "results.jsonl")] == list(range(10))
    assert video_frames(out / "video.mp4")[0] == 10
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["frames"] == 10


def test_every_and_max_frames_together(vigil: Vigil, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = vigil(out, "--set", "sources.0.every=2", "--set", "sources.0.max_frames=5")
    assert proc.returncode == 0, proc.stderr
    assert [r["index"] for r in read_jsonl(out / "results.jsonl")] == [0, 2, 4, 6, 8]


def test_synthetic_source(vigil: Vigil, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = vigil(out, "--source", "synthetic://320x240?frames=20")
    assert proc.returncode == 0, proc.stderr
    assert [r["seq"] for r in read_jsonl(out / "results.jsonl")] == list(range(20))
    assert video_frames(out / "video.mp4") == (20, (320, 240))


def test_bad_synthetic_size(vigil: Vigil, tmp_path: Path) -> None:
    proc = vigil(tmp_path / "out", "--source", "synthetic://bigxsmall")
    assert proc.returncode == 3
    assert "synthetic size must look like synthetic://640x480" in error_line(proc)


# ------------------------------------------------------------------------------ start_s


def _frames_of(path: Path) -> list[np.ndarray]:
    """Every frame of a video, read straight through (what a seek must land on)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def _source(**options: Any) -> Any:
    from pipeline.config import source_from_dict

    return source_from_dict({"id": "cam0", "uri": str(SAMPLE), **options})


def test_start_s_starts_a_file_at_that_frame_with_its_index_and_media_time() -> None:
    from pipeline.sources import open_source

    frames = _frames_of(SAMPLE)
    reader = open_source(_source(start_s=2.0))  # 12.5 fps: frame 25
    try:
        first = reader.read()
        assert first is not None and first.image is not None
        assert (first.index, first.pts) == (25, pytest.approx(2.0))
        assert np.array_equal(first.image, frames[25])
        assert not np.array_equal(first.image, frames[24]) and not np.array_equal(first.image, frames[26])
        second = reader.read()
        assert second is not None and second.index == 26 and np.array_equal(second.image, frames[26])
    finally:
        reader.close()


def test_start_s_on_a_written_video_and_loop_restarts_from_the_beginning(tmp_path: Path) -> None:
    """A clip whose every frame differs (colour and number): the seek lands on the frame asked
    for; at the end, `loop` goes back to frame 0, not to start_s, and media time goes on."""
    from pipeline.sources import open_source

    clip = tmp_path / "count.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(30):
        image = np.full((48, 64, 3), (i * 8, 255 - i * 8, (i * 37) % 256), np.uint8)
        cv2.putText(image, str(i), (4, 32), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        writer.write(image)
    writer.release()
    frames = _frames_of(clip)
    assert len(frames) == 30
    reader = open_source(_source(uri=str(clip), start_s=1.7, loop=True))  # 10 fps: frame 17
    try:
        got = [reader.read() for _ in range(15)]
    finally:
        reader.close()
    assert [c.index for c in got if c] == [*range(17, 30), 0, 1]
    assert [c.pts for c in got if c] == pytest.approx([i / 10 for i in range(17, 32)])
    for c in got:
        assert c is not None and np.array_equal(c.image, frames[c.index])


def test_start_s_through_a_run_skips_the_first_frames(vigil: Vigil, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = vigil(out, "--set", "sources.0.start_s=4")
    assert proc.returncode == 0, proc.stderr
    lines = read_jsonl(out / "results.jsonl")
    assert [r["seq"] for r in lines] == list(range(6))  # frames 50..55 of 56
    assert [r["index"] for r in lines] == list(range(50, 56))
    assert [r["pts"] for r in lines] == pytest.approx([i / 12.5 for i in range(50, 56)], abs=1e-3)
    assert video_frames(out / "video.mp4")[0] == 6


def test_start_s_does_not_delay_a_real_time_file() -> None:
    """Real-time pacing counts from the first frame: a file started 4 s in is not held 4 s."""
    import threading

    from pipeline.sources import capture_loop, open_source

    cfg = _source(start_s=4.0, realtime=True, max_frames=3)
    waits: list[float] = []
    sent: list[Any] = []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return False

    end = capture_loop(open_source(cfg), cfg, lambda m: sent.append(m) or True, threading.Event(), sleep)
    assert end.reason == "eos"
    assert [m.index for m in sent if hasattr(m, "index")] == [50, 51, 52]
    assert waits and max(waits) <= 2 / 12.5 + 1e-6, waits  # frames 51, 52: 1 and 2 intervals after 50


def test_start_s_past_the_end_of_the_file_is_a_source_error(vigil: Vigil, tmp_path: Path) -> None:
    proc = vigil(tmp_path / "out", "--set", "sources.0.start_s=60")
    assert proc.returncode == 3
    assert error_line(proc) == (
        f"error: source 'cam0': start_s 60 s is past the end of {SAMPLE.relative_to(REPO)} (4.5 s)"
    )


@pytest.mark.parametrize(
    ("uri", "start_s", "message"),
    [
        (0, 5, "start_s needs a video file, not a webcam"),
        ("rtsp://127.0.0.1:8554/door", 5, "start_s needs a video file, not a stream"),
        ("synthetic://64x48", 5, "start_s needs a video file, not synthetic frames"),
        ("clip.mp4", -1, "start_s: must be >= 0.0"),
        ("clip.mp4", 10**6, "start_s: must be <= 86400.0"),
        ("clip.mp4", float("inf"), "start_s: input should be a finite number"),
    ],
)
def test_start_s_is_checked_with_the_config(uri: str | int, start_s: float, message: str) -> None:
    from pipeline.config import source_from_dict
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        source_from_dict({"id": "cam0", "uri": uri, "start_s": start_s})
    assert str(exc.value).endswith(message)  # after the option's name
    assert source_from_dict({"id": "cam0", "uri": uri, "start_s": 0}).start_s == 0  # 0: no offset


def test_start_s_in_a_pipeline_file_is_reported_with_its_line(tmp_path: Path) -> None:
    from pipeline.config import load_config
    from pipeline.errors import ConfigError

    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nsources:\n  - uri: 0\n    start_s: 3\nstages:\n  - {id: out, kind: sink.jsonl}\n"
    )
    with pytest.raises(
        ConfigError, match=r"sources\[0\]\.start_s: start_s needs a video file, not a webcam \(line 4\)"
    ):
        load_config(path)


def test_start_s_on_an_image_folder_is_ignored_with_a_warning(
    vigil: Vigil, stills: Path, tmp_path: Path
) -> None:
    (stills / "face_n_broken.jpg").unlink()
    out = tmp_path / "out"
    proc = vigil(out, "--source", str(stills), "--set", "sources.0.start_s=1")
    assert proc.returncode == 0, proc.stderr
    assert "start_s applies to video files only; ignored for images" in proc.stderr
    assert [r["index"] for r in read_jsonl(out / "results.jsonl")] == list(range(len(list(stills.iterdir()))))


def test_video_files_decode_on_one_thread_with_the_same_frames() -> None:
    """A file up to 1080p decodes on one FFmpeg thread by default (cheaper a frame than frame
    threading); the frames are the same as with FFmpeg's own thread count."""
    from pipeline.config import SourceConfig
    from pipeline.sources import FileReader

    def frames(threads: int | None) -> list[np.ndarray]:
        reader = FileReader(SourceConfig(id="c", uri=str(SAMPLE), decode_threads=threads))
        try:
            if threads is None:
                assert reader.cap.get(cv2.CAP_PROP_N_THREADS) == 1
            return [c.image for c in iter(reader.read, None)]
        finally:
            reader.close()

    one, default = frames(None), frames(0)
    assert len(one) == len(default) == 56
    assert all(np.array_equal(a, b) for a, b in zip(one, default, strict=True))
