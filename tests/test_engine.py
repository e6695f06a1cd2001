"""The engine as a library: sources added to and removed from a running pipeline, the Python
API, the thread-start failure path, and the idle-is-not-a-stall watchdog."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import pytest

from pipeline import Pipeline, RunFailed
from pipeline.config import SourceConfig, config_from_dict, load_config
from pipeline.errors import ConfigError
from pipeline.runner import Runner

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "samples" / "faces_female_and_male.mp4"  # 56 frames, two faces
SMILING = REPO / "samples" / "face_male_smiling.mp4"  # 62 frames, one frontal face
FACES = REPO / "tests" / "data" / "configs" / "faces_jsonl.yaml"


def _record_pipeline(**links: Any) -> dict[str, Any]:
    """No sources of its own: capture -> video (one file per source) -> results."""
    return {
        "version": 1,
        "stages": [
            {"id": "video", "kind": "sink.video", "with": {"path": "video_{source}.mp4"}},
            {"id": "results", "kind": "sink.jsonl", "with": {"path": "results.jsonl"}},
        ],
        "links": {"policy": "lossless", **links},
    }


def _live(source_id: str, fps: int = 50) -> SourceConfig:
    # A paced synthetic camera that would run for minutes: only removal ends it.
    return SourceConfig(id=source_id, uri=f"synthetic://96x64?frames=100000&fps={fps}", realtime=True)


def _video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_sources_added_and_removed_while_running(tmp_path: Path) -> None:
    seen: dict[str, int] = {}
    with Pipeline.from_dict(_record_pipeline(), output_dir=tmp_path, keep_open=True) as run:
        run.start()
        run.add_source(_live("a").uri, id="a", realtime=True)
        run.add_source(_live("b").uri, id="b", realtime=True)
        frames = iter(run)
        for frame in frames:
            seen[frame.source] = seen.get(frame.source, 0) + 1
            if min(seen.get("a", 0), seen.get("b", 0)) >= 10:
                break
        assert run.remove_source("a") == "removed"
        # a's video is closed and readable while the pipeline goes on with b
        a_video = tmp_path / "video_a.mp4"
        assert _video_frames(a_video) >= 10
        b_before, a_total = seen["b"], _video_frames(a_video)
        for frame in frames:  # a's frames made before its removal may still be on their way to us
            seen[frame.source] += 1
            if seen["b"] >= b_before + 10:
                break
        assert seen["a"] <= a_total, "a removed source sent more frames"
        with pytest.raises(ConfigError, match="no running source"):
            run.remove_source("a")
        run.stop()
    summary = run.summary
    assert summary["status"] == "stopped"
    assert summary["sources"]["a"]["end"] == "removed"
    assert summary["sources"]["b"]["end"] == "stopped"
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    per_source = {s: [r["seq"] for r in records if r["source"] == s] for s in ("a", "b")}
    # every frame of a is in both outputs, in order, and b went on after a ended
    assert per_source["a"] == list(range(len(per_source["a"])))
    assert _video_frames(a_video) == len(per_source["a"])
    assert len(per_source["b"]) >= b_before + 10
    assert _video_frames(tmp_path / "video_b.mp4") == len(per_source["b"])


def test_an_id_in_use_is_refused_and_a_bad_source_is_a_clear_error(tmp_path: Path) -> None:
    with Pipeline.from_dict(_record_pipeline(), output_dir=tmp_path, keep_open=True) as run:
        run.start()
        run.add_source(_live("a").uri, id="a", realtime=True)
        with pytest.raises(ConfigError, match="'a' is in use"):
            run.add_source(_live("a").uri, id="a", realtime=True)
        with pytest.raises(Exception, match="no-such-file.mp4"):
            run.add_source(str(tmp_path / "no-such-file.mp4"), id="c")
        run.stop()
    assert set(run.summary["sources"]) == {"a"}


def test_iterating_a_pipeline_file_gives_every_frame_with_detections(tmp_path: Path) -> None:
    run = Pipeline.from_file(FACES, sources=[str(SMILING)], output_dir=tmp_path)
    frames = list(run)
    assert [f.seq for f in frames] == list(range(62))
    assert frames[0].image.shape == (270, 480, 3)
    # one face on every frame, in the middle of the picture where the man is
    assert all(len(f.detections) == 1 for f in frames)
    centres = [((x0 + x1) / 2, (y0 + y1) / 2) for f in frames for x0, y0, x1, y1 in f.detections.xyxy]
    assert all(180 < cx < 320 and 40 < cy < 160 for cx, cy in centres)
    assert run.summary["status"] == "completed" and run.summary["frames"] == 62
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 62


def test_leaving_the_loop_early_drains_and_keeps_outputs_valid(tmp_path: Path) -> None:
    config = load_config(FACES)
    config.stages[1].with_ = {"path": "results.jsonl"}
    taken = 0
    with Pipeline(config, tmp_path) as run:
        for _ in run:
            taken += 1
            if taken == 5:
                break
    assert run.summary["status"] == "stopped"
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) >= 5 and all(json.loads(line)["source"] == "cam0" for line in lines)


def test_a_failed_run_raises_with_its_exit_code(tmp_path: Path) -> None:
    data = {
        "version": 1,
        "sources": [{"id": "cam0", "uri": str(CLIP)}],
        "stages": [{"id": "faces", "kind": "detect.face", "with": {"model": str(tmp_path / "missing.onnx")}}],
    }
    with pytest.raises(RunFailed) as err:
        Pipeline.from_dict(data, output_dir=tmp_path).run()
    assert err.value.exit_code == 4 and "missing.onnx" in str(err.value)


def test_config_from_dict_names_the_bad_field() -> None:
    with pytest.raises(ConfigError, match=r"stages\[0\]\.with\.min_neighbors"):
        config_from_dict(
            {"version": 1, "stages": [{"id": "f", "kind": "detect.haar", "with": {"min_neighbors": "x"}}]}
        )


def test_a_capture_thread_that_cannot_start_is_reported_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name.startswith("capture-"):
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    config = load_config(FACES)
    config.sources = [SourceConfig(id="cam0", uri=str(CLIP))]
    result = Runner(config, tmp_path, quiet=True).run()
    assert result.status == "failed" and result.exit_code == 3
    assert "cannot start its capture thread: can't start new thread" in result.summary["error"]
    assert "join" not in result.summary["error"]


def test_an_idle_service_is_not_a_stall(tmp_path: Path) -> None:
    # No source for three times the stall timeout: nothing holds work, so nothing is wrong.
    run = Pipeline.from_dict(_record_pipeline(stall_timeout_s=0.3), output_dir=tmp_path, keep_open=True)
    run.start()
    time.sleep(1.0)
    run.stop()
    run.close()
    assert run.summary["status"] == "stopped" and run.summary["error"] is None


def test_a_source_that_breaks_fails_the_run_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import runner as runner_module
    from pipeline.sources import Captured, Reader, open_source

    class Breaking(Reader):
        """The real clip, then a read error on its fourth frame (a disk or decoder failure)."""

        def __init__(self, inner: Reader) -> None:
            self.inner, self.info, self.n = inner, inner.info, 0

        def read(self, decode: bool = True, stop: Any = None) -> Captured | None:
            self.n += 1
            if self.n == 4:
                raise OSError("input/output error")
            return self.inner.read(decode, stop)

        def close(self) -> None:
            self.inner.close()

    monkeypatch.setattr(runner_module, "open_source", lambda cfg: Breaking(open_source(cfg)))
    config = load_config(FACES)
    config.sources = [SourceConfig(id="cam0", uri=str(SMILING))]
    result = Runner(config, tmp_path, quiet=True).run()
    assert result.status == "failed" and result.exit_code == 3
    assert result.summary["sources"]["cam0"]["end"] == "error"
    assert "input/output error" in result.summary["sources"]["cam0"]["error"]
    assert "cam0" in result.summary["error"]
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 3  # what was read is kept


def test_the_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    import subprocess
    import sys

    text = (REPO / "README.md").read_text()
    code = text.split("## Use from Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    code = code.replace('output_dir="out"', f"output_dir={str(tmp_path)!r}")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len([line for line in lines if " face at (" in line]) == 62
    assert lines[-1].startswith("completed ")
    assert _video_frames(tmp_path / "annotated.mp4") == 62


def test_thread_budget_shares_the_cores_among_heavy_stages_and_gives_the_rest_one() -> None:
    """Detect, classify and filter stages share the run's threads (about 2x oversubscribed); the
    others (trackers, render, sinks: the video encoder among them) get one; `threads:` overrides."""
    from pipeline.graph import thread_budget

    config = config_from_dict(
        {
            "version": 1,
            "threads": 4,
            "stages": [
                {"id": "faces", "kind": "detect.haar"},
                {"id": "draw", "kind": "render"},
                {"id": "video", "kind": "sink.video"},
                {"id": "results", "kind": "sink.jsonl", "threads": 3},
            ],
        }
    )
    total, per_stage = thread_budget(config)
    assert total == 4 and per_stage == {"faces": 4, "draw": 1, "video": 1, "results": 3}
    only_light = config_from_dict({"version": 1, "threads": 4, "stages": [{"id": "draw", "kind": "render"}]})
    assert thread_budget(only_light)[1] == {"draw": 4}  # no heavy stage: the light ones share
