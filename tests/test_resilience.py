"""Resilience: stage errors (skip / stop), worker crashes and restarts, Ctrl-C draining, latest links.

Faults come from the `debug.fault` stage of tests/data/configs/fault.yaml, set with --set.
Runs that could hang, and every run that gets a signal, are subprocesses with a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import pytest

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]
FAULT = REPO / "tests" / "data" / "configs" / "fault.yaml"  # sample clip -> debug.fault -> video + jsonl
N = 56  # frames of the sample clip
ENTRY = "import sys; from pipeline.cli import entry; entry(sys.argv[1:])"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the fixture config names the sample clip relative to the repo


def run(out: Path, *sets: str) -> int:
    args = ["run", str(FAULT), "--output", str(out), "-q"]
    for s in sets:
        args += ["--set", s]
    return main(args)


def vigil_cmd(out: Path, *sets: str) -> list[str]:
    cmd = [sys.executable, "-c", ENTRY, "run", str(FAULT), "--output", str(out), "-q"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def run_or_dump(cmd: list[str], out: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `cmd`; if it outlives `timeout`, fail with every thread's stack (Python's fault handler
    dumps them on SIGABRT) and whether the run had already written its summary, so a hang that
    shows once in a while in CI says where it was."""
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        written = (out / "summary.json").exists()
        pytest.fail(f"hung for {timeout:.0f}s (summary written: {written}); stacks then:\n{err[-12000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, err)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} is not a readable video"
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def every_frame(n: int = N) -> str:
    return "[" + ",".join(map(str, range(n))) + "]"


# ------------------------------------------------------------------------------ stage errors


def test_on_error_skip_marks_the_failed_frames(tmp_path: Path) -> None:
    assert run(tmp_path, "stages.fault.with.raise_on=[3, 7]") == 0
    lines = read_jsonl(tmp_path / "results.jsonl")
    assert [r["seq"] for r in lines] == list(range(N))
    assert {r["seq"]: r["errors"] for r in lines if "errors" in r} == {3: ["fault"], 7: ["fault"]}
    summary = read_summary(tmp_path)
    assert summary["status"] == "completed"
    assert summary["stages"]["fault"]["errors"] == 2
    assert summary["stages"]["fault"]["frames_out"] == N
    assert video_frames(tmp_path / "annotated.mp4") == N


def test_on_error_stop_fails_with_a_valid_video(tmp_path: Path) -> None:
    assert run(tmp_path, "stages.fault.with.raise_on=[3, 7]", "stages.fault.on_error=stop") == 5
    summary = read_summary(tmp_path)
    assert summary["status"] == "failed" and summary["exit_code"] == 5
    assert "stage fault failed on frame cam0#3" in summary["error"]
    lines = read_jsonl(tmp_path / "results.jsonl")
    assert 4 <= len(lines) < N  # frames 0-3 at least; the run stopped early
    assert [r["seq"] for r in lines] == list(range(len(lines)))
    assert all("errors" not in r for r in lines[:3]) and lines[3]["errors"] == ["fault"]
    assert video_frames(tmp_path / "annotated.mp4") == len(lines)


# ------------------------------------------------------------------------------ crashes


@pytest.mark.slow
def test_worker_crash_once_is_restarted_and_loses_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    out = tmp_path / "out"
    assert (
        run(
            out,
            "stages.fault.placement=process",
            "stages.fault.with.crash_on=[10]",
            f"stages.fault.with.crash_once={marker}",
        )
        == 0
    )
    assert marker.read_text() == "10"  # the worker really died on frame 10
    lines = read_jsonl(out / "results.jsonl")
    assert [r["seq"] for r in lines] == list(range(N))
    assert all("errors" not in r for r in lines), [r["seq"] for r in lines if "errors" in r]
    summary = read_summary(out)
    assert summary["status"] == "completed"
    assert summary["stages"]["fault"]["restarts"] >= 1
    assert summary["stages"]["fault"]["frames_out"] == N
    assert video_frames(out / "annotated.mp4") == N


@pytest.mark.slow
def test_poison_frame_is_passed_on_alone(tmp_path: Path) -> None:
    """Frame 10 kills every worker that touches it: it is passed on marked with the error after
    MAX_ATTEMPTS deliveries. The frames queued behind it did nothing wrong and must be processed.
    (The stall watchdog is shortened so a hang fails within a minute, not two.)"""
    assert (
        run(
            tmp_path,
            "stages.fault.placement=process",
            "stages.fault.with.crash_on=[10]",
            "links.stall_timeout_s=60",  # a hang still fails, well inside the test's timeout
        )
        == 0
    )
    lines = read_jsonl(tmp_path / "results.jsonl")
    assert [r["seq"] for r in lines] == list(range(N))
    summary = read_summary(tmp_path)
    assert summary["status"] == "completed" and summary["stages"]["fault"]["restarts"] >= 1
    assert [r["seq"] for r in lines if "errors" in r] == [10]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_stage_that_always_crashes_fails_clearly(tmp_path: Path, workers: int) -> None:
    """Every worker dies on every frame: the run must end with a stage failure (exit 5) once the
    restarts are used up, not hang until the stall watchdog (exit 6, "no frame moved").

    What ended the run is checked, not how long it took: restarts are slow on a loaded machine.
    The watchdog is shortened to a minute so a hang fails in one, and the subprocess timeout
    (above it) catches a run that hangs even past the watchdog."""
    out = tmp_path / "out"
    cmd = vigil_cmd(
        out,
        "stages.fault.placement=process",
        f"stages.fault.workers={workers}",
        f"stages.fault.with.crash_on={every_frame()}",
        "links.stall_timeout_s=60",
    )
    proc = run_or_dump(cmd, out, timeout=180)
    assert "Traceback" not in proc.stderr
    summary = read_summary(out)
    assert summary["status"] == "failed"
    assert proc.returncode == 5, f"exit {proc.returncode}: {summary['error']}"
    assert "every worker died" in summary["error"] and "no frame moved" not in summary["error"]
    assert summary["stages"]["fault"]["restarts"] >= workers  # each worker was restarted before giving up
    assert video_frames(out / "annotated.mp4") == len(read_jsonl(out / "results.jsonl"))


# ------------------------------------------------------------------------------ Ctrl-C


def _start_slow_run(out: Path, delay_ms: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        vigil_cmd(out, f"stages.fault.with.delay_ms={delay_ms}"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 30
    while not (results.exists() and results.read_text(encoding="utf-8").strip()):  # frames are flowing
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no frame reached the results in 30s"
        time.sleep(0.05)
    return proc


def _finish(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


@pytest.mark.slow
def test_sigint_drains_and_leaves_valid_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _start_slow_run(out, delay_ms=50)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stderr = _finish(proc, timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "draining" in stderr
    summary = read_summary(out)
    assert summary["status"] == "stopped"
    lines = read_jsonl(out / "results.jsonl")
    assert 0 < len(lines) < N  # stopped early ...
    assert [r["seq"] for r in lines] == list(range(len(lines)))  # ... and drained: nothing lost in between
    assert all("errors" not in r for r in lines)
    assert video_frames(out / "annotated.mp4") == len(lines) == summary["frames"]
    for sid, stage in summary["stages"].items():
        assert stage["frames_in"] == stage["frames_out"] == len(lines), sid


@pytest.mark.slow
def test_second_sigint_stops_at_once(tmp_path: Path) -> None:
    """With 1 s per frame, the lossless link in front of the stage is full (capacity frames) when
    Ctrl-C comes; a drain would finish all of them. The second Ctrl-C ends the run now: those frames
    are left undone, and the video written so far is still valid.

    What was left undone is checked, not the seconds it took (a loaded machine stretches those);
    the timeout only catches a hang."""
    out = tmp_path / "out"
    proc = _start_slow_run(out, delay_ms=1000)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)  # two signals at once would reach the handler as one
    proc.send_signal(signal.SIGINT)
    stderr = _finish(proc, timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopping now" in stderr
    summary = read_summary(out)
    assert summary["status"] == "aborted"
    lines = read_jsonl(out / "results.jsonl")
    assert 1 <= len(lines) <= summary["links"]["capacity"], f"{len(lines)} frames: the queue was drained"
    assert video_frames(out / "annotated.mp4") == len(lines)
    # Stopping on purpose is not a capture failure: no ERROR line with an empty reason.
    assert "capture failed" not in stderr, stderr


# ------------------------------------------------------------------------------ link policy


@pytest.mark.parametrize("policy", ["latest", "lossless"])
def test_latest_drops_when_behind_lossless_does_not(tmp_path: Path, policy: str) -> None:
    """A live-paced source at 40 fps into a stage that needs 100 ms a frame."""
    frames = 40
    assert (
        main(
            [
                "run",
                str(FAULT),
                "--source",
                f"synthetic://64x48?frames={frames}&fps=40",
                "--output",
                str(tmp_path),
                "-q",
                "--set",
                "sources.0.realtime=true",
                "--set",
                f"links.policy={policy}",
                "--set",
                "stages.fault.with.delay_ms=100",
            ]
        )
        == 0
    )
    summary = read_summary(tmp_path)
    fault = summary["stages"]["fault"]
    lines = read_jsonl(tmp_path / "results.jsonl")
    assert summary["links"]["policy"] == policy and summary["status"] == "completed"
    if policy == "latest":
        assert fault["drops"] > 0
        assert fault["frames_in"] <= frames / 2, fault  # far fewer processed than captured
        assert fault["frames_in"] + fault["drops"] == frames  # every captured frame is accounted for
        seqs = [r["seq"] for r in lines]
        assert seqs == sorted(seqs) and len(seqs) == fault["frames_out"]  # newest first never reorders
    else:
        assert fault["drops"] == 0 and fault["frames_in"] == frames
        assert [r["seq"] for r in lines] == list(range(frames))
    assert video_frames(tmp_path / "annotated.mp4") == len(lines)
