"""`vigil batch` in local mode: inputs expanded, outputs per file equal to `vigil run`'s, a
failing file reported without ending the batch, and `--resume` after a real Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.integrity import sha256_file
from pipeline.batch.inputs import expand_inputs
from pipeline.batch.manifest import (
    MARKER,
    Marker,
    config_hash,
    is_complete,
    list_outputs,
    read_marker,
)
from pipeline.cli import main
from pipeline.config import load_config, with_sources
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "faces_haar.yaml"  # Haar -> render -> annotated.mp4 + results.jsonl
CLIP = REPO / "samples" / "faces_female_and_male.mp4"  # 56 frames


def copies(folder: Path, n: int, clip: Path = CLIP) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"clip{i}.mp4" for i in range(n)]
    for p in paths:
        shutil.copyfile(clip, p)
    return paths


def batch_json(out: Path) -> dict:
    return json.loads((out / "batch.json").read_text())


# ------------------------------------------------------------------------------ inputs, hashes
def test_inputs_keep_their_path_below_the_folder_or_glob_they_came_from(tmp_path):
    copies(tmp_path / "a" / "day1", 2)
    copies(tmp_path / "b", 1)
    (tmp_path / "a" / "notes.txt").write_text("not a video")
    items = expand_inputs([str(tmp_path / "a"), str(tmp_path / "b" / "*.mp4")])
    assert [str(i.relative) for i in items] == ["day1/clip0.mp4", "day1/clip1.mp4", "clip0.mp4"]
    assert items[2].output_dir(Path("/out")) == Path("/out/clip0.mp4")


def test_two_inputs_that_would_share_an_output_folder_are_refused(tmp_path):
    a, b = copies(tmp_path / "a", 1)[0], copies(tmp_path / "b", 1)[0]
    with pytest.raises(ConfigError, match="would both write"):
        expand_inputs([str(a), str(b)])
    with pytest.raises(ConfigError, match="no such file"):
        expand_inputs([str(tmp_path / "missing.mp4")])


def test_the_config_hash_ignores_the_source_uri_and_threads_but_not_stage_options():
    base = load_config(CONFIG)
    other_file = with_sources(base, ["elsewhere.mp4"]).model_copy(update={"threads": 1})
    assert config_hash(other_file) == config_hash(base)
    assert config_hash(load_config(CONFIG, ["stages.faces.with.min_neighbors=6"])) != config_hash(base)


def test_a_folder_counts_as_complete_only_for_the_same_config_input_and_outputs(tmp_path):
    clip = copies(tmp_path / "in", 1)[0]
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "results.jsonl").write_text('{"seq": 0}\n')
    marker = Marker("complete", str(clip), "cfg", sha256_file(clip), outputs=list_outputs(folder))
    marker.write(folder)
    assert is_complete(folder, "cfg", clip)
    assert not is_complete(folder, "another config", clip)
    (folder / "results.jsonl").write_text('{"seq": 0}\n{"seq"')  # cut or changed since
    assert not is_complete(folder, "cfg", clip)
    (folder / "results.jsonl").write_text('{"seq": 0}\n')
    with clip.open("ab") as f:  # the input changed
        f.write(b"\0")
    assert not is_complete(folder, "cfg", clip)
    clip.write_bytes(CLIP.read_bytes())
    Marker("partial", str(clip), "cfg", sha256_file(clip), outputs=list_outputs(folder)).write(folder)
    assert not is_complete(folder, "cfg", clip)


# ------------------------------------------------------------------------------ runs
@pytest.mark.slow
def test_each_file_gets_what_vigil_run_gives_it_and_a_bad_file_does_not_end_the_batch(tmp_path):
    inputs = copies(tmp_path / "in", 2)
    (tmp_path / "in" / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    code = main(["batch", str(CONFIG), str(tmp_path / "in"), "--output", str(out), "--workers", "2", "-q"])
    report = batch_json(out)
    rows = {Path(r["input"]).name: r for r in report["files"]}
    assert rows["broken.mp4"]["status"] == "failed" and rows["broken.mp4"]["exit_code"] == 3
    assert code == 3  # the first failure's code, after every other file ran
    assert report["completed"] == 2 and report["failed"] == 1 and report["threads_per_run"] == 1
    reference = tmp_path / "ref"
    assert main(["run", str(CONFIG), "--source", str(inputs[0]), "--output", str(reference), "-q"]) == 0
    for clip in inputs:
        folder = out / clip.name
        assert rows[clip.name]["status"] == "completed" and rows[clip.name]["frames"] == 56
        assert (folder / "results.jsonl").read_bytes() == (reference / "results.jsonl").read_bytes()
        assert (folder / "annotated.mp4").stat().st_size > 0
        assert json.loads((folder / "summary.json").read_text())["status"] == "completed"
        marker = read_marker(folder)
        assert marker is not None and marker.state == "complete"
        assert set(marker.outputs) == {"annotated.mp4", "results.jsonl", "summary.json"}
    assert read_marker(out / "broken.mp4").state == "failed"


@pytest.mark.slow
def test_resume_after_ctrl_c_runs_only_the_files_not_complete(tmp_path):
    copies(tmp_path / "in", 5)
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from pipeline.cli import entry; entry()", "batch", str(CONFIG)]
    command += [str(tmp_path / "in")]
    command += ["--output", str(out), "--workers", "1", "-q"]
    proc = subprocess.Popen(command, cwd=REPO, start_new_session=True, stderr=subprocess.DEVNULL)
    try:  # Ctrl-C as a terminal sends it: to the whole process group, once the first file is done
        deadline = time.monotonic() + 240
        while not (m := read_marker(out / "clip0.mp4")) or m.state != "complete":
            assert proc.poll() is None and time.monotonic() < deadline, "no file completed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(120) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    first = batch_json(out)
    # files that had not started when Ctrl-C came never start (only clip1 was running)
    assert first["interrupted"] and 1 <= first["completed"] < 5 and first["pending"] >= 2
    done = {Path(r["input"]).name for r in first["files"] if r["status"] == "completed"}
    for name in (f"clip{i}.mp4" for i in range(5)):
        marker = read_marker(out / name)  # complete, or clearly not: never a bare folder
        assert (marker is not None and marker.state == "complete") == (name in done)
        assert marker is not None or not (out / name).exists()
    kept = {name: (out / name / "results.jsonl").stat().st_mtime_ns for name in done}

    assert main(["batch", str(CONFIG), str(tmp_path / "in"), "--output", str(out), "--resume", "-q"]) == 0
    second = batch_json(out)
    statuses = {Path(r["input"]).name: r["status"] for r in second["files"]}
    assert {n for n, s in statuses.items() if s == "skipped"} == done
    assert {n for n, s in statuses.items() if s == "completed"} == {f"clip{i}.mp4" for i in range(5)} - done
    assert {name: (out / name / "results.jsonl").stat().st_mtime_ns for name in done} == kept
    assert all(read_marker(out / f"clip{i}.mp4").state == "complete" for i in range(5))
    assert (out / "clip0.mp4" / MARKER).is_file()


@pytest.mark.slow
def test_bench_batch_sets_vigil_batch_beside_a_shell_loop(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["-q", "bench", "batch", str(CONFIG), str(CLIP), "--files", "2", "--no-ray", "--json", str(out)]
    assert main(argv) == 0
    rows = json.loads(out.read_text())
    assert rows[0]["x_shell_loop"] == 1.0 and len(rows) == 3
    assert all(r["files"] == 2 and r["files_per_s"] > 0 and r["x_shell_loop"] > 0 for r in rows)
    assert "x_shell_loop" in capsys.readouterr().out


@pytest.mark.slow
def test_a_killed_local_worker_fails_its_file_and_the_rest_are_left_for_resume(tmp_path):
    copies(tmp_path / "in", 3)
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from pipeline.cli import entry; entry()", "batch", str(CONFIG)]
    command += [str(tmp_path / "in"), "--output", str(out), "--workers", "1", "-q"]
    proc = subprocess.Popen(command, cwd=REPO, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (m := read_marker(out / "clip1.mp4")) or m.state != "running":
            assert proc.poll() is None and time.monotonic() < deadline, "clip1 never started"
            time.sleep(0.02)
        os.kill(m.pid, signal.SIGKILL)  # the pool's worker process, mid-file
        assert proc.wait(120) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    statuses = [r["status"] for r in batch_json(out)["files"]]
    assert statuses == ["completed", "failed", "failed"]
    assert read_marker(out / "clip1.mp4").state == "running"  # never taken for complete
    assert main(["batch", str(CONFIG), str(tmp_path / "in"), "--output", str(out), "--resume", "-q"]) == 0
    assert [r["status"] for r in batch_json(out)["files"]] == ["skipped", "completed", "completed"]
