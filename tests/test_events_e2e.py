"""People counting with the event sinks on the store-aisle clip: MQTT gets exactly the line
crossings results.jsonl has, each with a snapshot and an H.264 clip that starts before it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mqtt_broker import Broker, Subscriber
from mqtt_broker import broker as broker  # the fixture

from pipeline.cli import main

pytestmark = [pytest.mark.model, pytest.mark.slow]

PRE_ROLL_S = 1.0


def _config(tmp_path: Path, port: int) -> Path:
    config = yaml.safe_load(Path("configs/people_counting.yaml").read_text())
    stages = [s for s in config["stages"] if s["kind"] != "sink.video"]  # not needed here
    stages += [
        {"id": "events", "kind": "events"},
        {"id": "snapshots", "kind": "sink.snapshots", "with": {"types": ["line_cross"]}},
        {
            "id": "clips",
            "kind": "sink.clips",
            "with": {"types": ["line_cross"], "pre_roll_s": PRE_ROLL_S, "post_roll_s": 0.5},
        },
        {"id": "mqtt", "kind": "sink.mqtt", "with": {"port": port, "prefix": "shop"}},
    ]
    config["stages"] = stages
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_people_counting_publishes_the_line_crossings(broker: Broker, tmp_path, media):
    av = pytest.importorskip("av")
    sub = Subscriber(broker.port, "shop/#")
    out = tmp_path / "out"
    try:
        code = main(
            [
                "run",
                str(_config(tmp_path, broker.port)),
                "--source",
                str(media / "videos/people_store_aisle_intel.mp4"),
                "--output",
                str(out),
                "-q",
            ]
        )
        assert code == 0
        lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
        crossings = [
            (ln["pts"], e["track_id"], e["direction"])
            for ln in lines
            for e in ln.get("events", [])
            if e["type"] == "line_cross" and "id" not in e
        ]  # the analytics stage's own
        assert crossings, "the clip has people crossing the line"
        total = json.loads((out / "summary.json").read_text())["stages"]["events"]["report"]["events"]
        published = [json.loads(p) for _, p, _ in sub.wait_for(sum(total.values()), "shop/cam0/events")]
        mqtt_crossings = [e for e in published if e["type"] == "line_cross"]
        assert sorted((e["pts"], e["track_id"], e["data"]["direction"]) for e in mqtt_crossings) == sorted(
            crossings
        )
        assert {e["type"] for e in published} >= {"object_new", "line_cross"}
        assert len(published) == sum(total.values())  # every event the events stage made
    finally:
        sub.close()
    late = Subscriber(broker.port, "shop/#")  # retained values outlive the run
    try:
        (_, count, retained), *_ = late.wait_for(1, "shop/cam0/person/count")
        assert retained and count.isdigit()
        assert late.wait_for(1, "shop/status")[0][1:] == (b"offline", True)
    finally:
        late.close()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stages"]["mqtt"]["report"]["delivery"]["dropped"] == 0
    for e in mqtt_crossings:
        assert (out / e["snapshot"]).is_file()
        assert e["clip_offset_s"] >= PRE_ROLL_S or e["pts"] < PRE_ROLL_S  # the clip starts >= pre_roll before
        with av.open(str(out / e["clip"])) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert sum(1 for _ in container.decode(stream)) >= PRE_ROLL_S * 16  # 16.7 fps source
