"""Motion gating on the real fixed-camera video and YOLOX-nano: quality must not drop.

people_one_by_one_part1_intel.mp4: 720 frames, 3 visits (frames 61-199, 228-449, 502-699, about
±3 frames at the edges), empty in between (../shared/media/SOURCES-detectors.md). A frame
"reports a person" when it has a person detection with a track id (what counting uses).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import Pipeline

pytestmark = [pytest.mark.model, pytest.mark.slow]

VISITS = [(61, 199), (228, 449), (502, 699)]
EDGE = 3  # frames of uncertainty where a person enters or leaves


def _run(config: str, video: Path, out: Path) -> tuple[dict[int, set[int]], dict, list[dict]]:
    result = Pipeline.from_file(config, sources=[str(video)], output_dir=out).run()
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    people = {
        r.get("index", r["seq"]): {
            d["track_id"] for d in r["detections"] if d["label"] == "person" and d["track_id"] is not None
        }
        for r in records
    }
    return people, result.summary, records


def _empty(i: int) -> bool:
    return all(not (a - EDGE <= i <= b + EDGE) for a, b in VISITS)


def test_gated_people_counting_keeps_quality_with_the_detector_on_at_most_half_the_frames(media, tmp_path):
    video = media / "videos" / "people_one_by_one_part1_intel.mp4"
    gated, summary, records = _run("configs/people_counting_gated.yaml", video, tmp_path / "gated")
    plain, plain_summary, _ = _run("configs/people_counting.yaml", video, tmp_path / "plain")

    with_person = {i for i, ids in plain.items() if ids}
    found = {i for i, ids in gated.items() if ids}
    coverage = len(with_person & found) / len(with_person)
    empty = [i for i in gated if _empty(i)]
    false_rate = sum(1 for i in empty if gated[i]) / len(empty)
    report = summary["stages"]["people"]["report"]
    ran = report["inferred"] / (report["inferred"] + report["skipped"])
    print(
        f"\ncoverage {coverage:.3f} of {len(with_person)} frames, empty-frame reports {false_rate:.3f} "
        f"of {len(empty)}, detector on {ran:.3f} of the frames ({report}), "
        f"ids {sorted(set().union(*gated.values()))}"
    )
    assert len(records) == 720 and report["inferred"] + report["skipped"] == 720
    assert coverage >= 0.97
    assert false_rate <= 0.01
    assert set().union(*gated.values()) == set().union(*plain.values()) == {1, 2, 3}
    assert ran <= 0.5
    assert plain_summary["stages"]["people"]["report"] == {
        **plain_summary["stages"]["people"]["report"],
        "inferred": 720,
        "skipped": 0,
    }
    # skipped frames carry the tracker's predictions, marked as such
    predicted = [r for r in records if r.get("predicted")]
    assert len(predicted) == report["skipped"]
    assert any(r["detections"] for r in predicted) and any(not r["detections"] for r in predicted)
    assert summary["stages"]["motion"]["report"]["frames_with_motion"] < 720 / 2
