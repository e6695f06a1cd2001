"""`vigil bench events CONFIG`: event throughput through `sink.mqtt` and what the event sinks cost
a pipeline (`vigil bench events`).

1. Events per second through `sink.mqtt` to a local mosquitto (started here on a free loopback
   port unless `port` is given), qos 0 and 1: from the first `process()` until the broker has
   confirmed the last event; beside it the time `process()` itself took per event (what the
   frame path pays).
2. The pipeline's fps as given (the baseline, ratio 1.0), with `events` + `sink.mqtt` added,
   and with `events` + `sink.clips` added (every event type, so clips are written most of the
   time). Rounds are interleaved and each side keeps its best, as in `bench pipeline`.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.engine import run_pipeline
from pipeline.config import PipelineConfig, StageConfig
from pipeline.errors import ConfigError
from pipeline.frame import Frame
from pipeline.stage import StageContext
from stages.event_model import OutEvent


@contextlib.contextmanager
def local_broker(folder: Path) -> Iterator[int]:
    """mosquitto on a free 127.0.0.1 port for the duration; yields the port."""
    if shutil.which("mosquitto") is None:
        raise ConfigError(
            "bench events needs mosquitto (apt-get install mosquitto) or --port of a running broker"
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _frames(events: int, per_frame: int) -> list[Frame]:
    image = np.zeros((8, 8, 3), np.uint8)
    frames = []
    for seq in range((events + per_frame - 1) // per_frame):
        made = [
            OutEvent(
                f"bench-{seq}-{k}",
                "line_cross",
                "events",
                "cam0",
                seq / 30,
                1e9 + seq / 30,
                k,
                "person",
                0.9,
                (10.0, 20.0, 60.0, 120.0),
                ("door",),
                {"emotion": "happy"},
                {"direction": "in"},
            )
            for k in range(min(per_frame, events - seq * per_frame))
        ]
        frames.append(
            Frame("cam0", seq, seq / 30, 1e9, image, events=tuple(e.to_frame_event() for e in made))
        )
    return frames


def mqtt_throughput(port: int, events: int, qos: int, folder: Path, per_frame: int = 10) -> dict[str, Any]:
    """One row: events/s to the broker (confirmed), and process() time per event."""
    from stages.sink_mqtt import MqttSink, MqttSinkOptions

    options = MqttSinkOptions.model_validate(
        {"port": port, "qos": qos, "counts": False, "queue_size": events + 1, "close_timeout_s": 120}
    )
    sink = MqttSink(options, StageContext(f"bench-qos{qos}", output_dir=folder))
    sink.setup()
    if not sink.wait_connected(10):
        raise ConfigError(f"bench events: no MQTT broker answered on 127.0.0.1:{port}")
    frames = _frames(events, per_frame)
    t0 = time.perf_counter()
    for f in frames:
        sink.process(f)
    put_s = time.perf_counter() - t0
    sink.close()
    total_s = time.perf_counter() - t0
    report = sink.context.report["delivery"]
    return {
        "run": f"sink.mqtt qos {qos} -> local mosquitto",
        "events": events,
        "events_per_s": round(report["sent"] / total_s),
        "process_us_per_event": round(put_s / events * 1e6, 1),
        "dropped": report["dropped"] + report["failed"],
    }


def _with_stages(config: PipelineConfig, extra: list[dict[str, Any]]) -> PipelineConfig:
    stages = [*config.stages, *(StageConfig.model_validate(s) for s in extra)]
    return config.model_copy(update={"stages": stages})


def pipeline_rows(config: PipelineConfig, port: int, folder: Path, rounds: int) -> list[dict[str, Any]]:
    """Pipeline fps as given, with events + sink.mqtt and with events + sink.clips (best of
    `rounds`, interleaved), and the p50 time per frame of the stages added (what they cost the
    frame path, steadier than fps on a busy machine)."""
    events = {"id": "bench_events", "kind": "events"}
    mqtt = {"id": "bench_mqtt", "kind": "sink.mqtt", "with": {"port": port}}
    clips = {"id": "bench_clips", "kind": "sink.clips"}
    variants = {
        "pipeline as given": (config, []),
        "+ events + sink.mqtt": (_with_stages(config, [events, mqtt]), ["bench_events", "bench_mqtt"]),
        "+ events + sink.clips (every event type)": (
            _with_stages(config, [events, clips]),
            ["bench_events", "bench_clips"],
        ),
    }
    best: dict[str, tuple[float, int, float]] = {}  # name -> fps, frames, added ms per frame
    for r in range(rounds):
        for i, (name, (variant, added)) in enumerate(variants.items()):
            summary = run_pipeline(variant, folder / f"round{r}-{i}")
            if summary.get("exit_code", 0) != 0:
                raise ConfigError(
                    f"bench events: the run {name!r} failed: {summary.get('error', summary['status'])}"
                )
            n, seconds = summary["frames"], summary["processing_s"]
            fps = n / seconds if seconds > 0 else 0.0
            added_ms = sum(summary["stages"][s]["latency_ms_p50"] or 0.0 for s in added)
            if name not in best or fps > best[name][0]:
                best[name] = (fps, n, min(added_ms, best.get(name, (0, 0, added_ms))[2]))
    base_fps = best["pipeline as given"][0] or 1.0
    return [
        {
            "run": name,
            "frames": n,
            "fps": round(fps, 2),
            "x_baseline": round(fps / base_fps, 3),
            "added_ms_per_frame": round(added_ms, 3),
            "added_share_of_frame": f"{added_ms * base_fps / 1000:.1%}",
        }
        for name, (fps, n, added_ms) in best.items()
    ]


def run(
    config: PipelineConfig | None,
    events: int = 20000,
    rounds: int = 3,
    port: int | None = None,
    max_frames: int | None = None,
) -> list[dict[str, Any]]:
    """MQTT throughput rows (qos 0 and 1), then, with a config, the pipeline fps rows."""
    if config is not None:
        config.sources = config.sources[:1]
        if max_frames:
            for s in config.sources:
                s.max_frames = max_frames
    with tempfile.TemporaryDirectory(prefix="vigil-bench-events-") as tmp:
        folder = Path(tmp)
        with contextlib.ExitStack() as stack:
            if port is None:
                port = stack.enter_context(local_broker(folder))
            rows = [mqtt_throughput(port, events, qos, folder) for qos in (0, 1)]
            if config is not None:
                rows += pipeline_rows(config, port, folder, rounds)
    return rows
