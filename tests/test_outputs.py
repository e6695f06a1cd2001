"""Outputs under hostile conditions: an output that would overwrite the input, an output path that
is a file or read-only, a full disk, and a stale summary from an earlier run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.outputs import write_atomic

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "samples" / "faces_female_and_male.mp4"
RECORD = REPO / "tests" / "data" / "configs" / "record.yaml"  # capture -> sink.video + sink.jsonl


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted at `path` (needs root; CI runs as root)."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        pytest.skip(f"needs root to mount a small tmpfs: {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_an_output_that_would_overwrite_the_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(CLIP.read_bytes())
    before = _digest(clip)
    code = main(
        [
            "run",
            str(RECORD),
            "--source",
            str(clip),
            "--output",
            str(tmp_path),
            "--set",
            "stages.video.with.path=clip.mp4",
            "-q",
        ]
    )
    assert code == 2
    assert "would overwrite its input" in capsys.readouterr().err
    assert _digest(clip) == before
    assert not (tmp_path / "results.jsonl").exists()  # refused before anything opened


def test_an_output_path_that_is_a_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    target.write_text("not a folder")
    assert main(["run", str(RECORD), "--source", str(CLIP), "--output", str(target), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"output {target}: exists and is not a folder" in err and "internal error" not in err


@pytest.mark.slow
def test_a_read_only_output_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _tmpfs(tmp_path / "ro", "size=1m,ro") as ro:
        assert main(["run", str(RECORD), "--source", str(CLIP), "--output", str(ro / "out"), "-q"]) == 2
        err = capsys.readouterr().err
        assert f"output {ro / 'out'}: cannot write there: Read-only file system" in err


@pytest.mark.slow
def test_a_full_disk_stops_the_run_naming_the_file_and_keeps_whole_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _tmpfs(tmp_path / "small", "size=48k") as small:
        out = small / "out"
        code = main(["run", str(RECORD), "--source", str(CLIP), "--output", str(out), "-q"])
        err = capsys.readouterr().err
        assert code == 7, err
        assert str(out) in err and "write" in err and "internal error" not in err
        jsonl = out / "results.jsonl"
        if jsonl.exists() and jsonl.stat().st_size:
            text = jsonl.read_text()
            assert text.endswith("\n")
            assert all(json.loads(line)["source"] == "cam0" for line in text.splitlines())
        summary = out / "summary.json"
        if summary.exists():  # never a half-written summary
            assert json.loads(summary.read_text())["status"] == "failed"
        assert "wrote " not in err  # no claim of a file that was not written


def test_a_stale_summary_never_stays_beside_new_results(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "frames": 999}))
    assert (
        main(["run", str(RECORD), "--source", str(tmp_path / "missing.mp4"), "--output", str(tmp_path), "-q"])
        == 3
    )
    assert not (tmp_path / "summary.json").exists()
    assert main(["run", str(RECORD), "--source", str(CLIP), "--output", str(tmp_path), "-q"]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["frames"] == 56


def test_write_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")
    write_atomic(target, "new" * 1000)
    assert target.read_text() == "new" * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
