"""`vigil serve` under load: N looped camera-like streams, and what live viewers cost.

    python -m benchmarks.serve [--streams 8] [--duration 600] [--pipeline haar|render]

Runs the service in this process on a free loopback port with N looped sample clips paced at
their own fps (like cameras, `latest` links), then measures in interleaved phases of equal length
  0 viewers, 1 viewer, 10 viewers, 0 viewers, 1 viewer, 10 viewers
the pipeline's throughput (frames out of the pipeline per second, all streams), per-stream fps,
p99 latency (capture to result), the process RSS and CPU (% of one core). Viewers are MJPEG clients on
/api/streams/ID/live, spread over the streams. The cost of viewers is the throughput of their
phases over that of the 0-viewer phases, measured in this one run. With `haar` the detector
saturates the CPU (as a surveillance box does), so a viewer's CPU shows up as lost fps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.table import format_table

if TYPE_CHECKING:  # the service stack loads only when the benchmark runs (`vigil bench --help` stays fast)
    from pipeline.frame import Frame
    from pipeline.service.embedded import EmbeddedService

REPO = Path(__file__).resolve().parents[1]

CLIPS = ["samples/face_male_smiling.mp4", "samples/faces_female_and_male.mp4"]
PIPELINES: dict[str, list[dict[str, Any]]] = {
    "haar": [{"id": "faces", "kind": "detect.haar"}, {"id": "draw", "kind": "render"}],
    "render": [{"id": "draw", "kind": "render"}],
}
PHASES = [0, 1, 10, 0, 1, 10]  # viewers per phase, interleaved so background load hits each alike


@dataclass
class Tally:
    """Result frames seen by the bench (observer of the service's result tap)."""

    frames: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, frame: Frame) -> None:
        with self.lock:
            self.frames[frame.source] += 1
            self.latencies.append(time.time() - frame.wall)

    def take(self) -> tuple[dict[str, int], list[float]]:
        with self.lock:
            frames, lat = dict(self.frames), self.latencies
            self.frames, self.latencies = defaultdict(int), []
        return frames, lat


class Viewer(threading.Thread):
    """One browser-like MJPEG client; counts the JPEG parts it receives."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.parts = url, stop, 0

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=30) as client, client.stream("GET", self.url) as response:
            for chunk in response.iter_bytes():
                self.parts += chunk.count(b"\xff\xd9")  # JPEG end markers
                if self.stop.is_set():
                    return


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_phase(
    svc: EmbeddedService, tally: Tally, ids: list[str], viewers: int, seconds: float
) -> dict[str, Any]:
    stop = threading.Event()
    clients = [Viewer(f"{svc.url}/api/streams/{ids[i % len(ids)]}/live", stop) for i in range(viewers)]
    for c in clients:
        c.start()
    time.sleep(min(2.0, seconds / 5))  # let the viewers connect
    tally.take()
    parts0 = sum(c.parts for c in clients)  # what arrived while connecting does not count
    started, cpu = time.monotonic(), time.process_time()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu
    frames, lat = tally.take()
    stop.set()
    parts = sum(c.parts for c in clients) - parts0
    for c in clients:
        c.join(timeout=5)
    lat.sort()
    return {
        "viewers": viewers,
        "fps": sum(frames.values()) / elapsed,
        "per_stream": {sid: frames.get(sid, 0) / elapsed for sid in ids},
        "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else float("nan"),
        "rss_mb": rss_mb(),
        "cpu_pct": 100 * cpu / elapsed,  # of one core, the whole process
        "viewer_fps": parts / elapsed / max(1, viewers) if viewers else 0.0,
    }


def run(streams: int, duration_s: float, pipeline: str, live_fps: float, out: Path) -> list[dict[str, Any]]:
    sources = [
        {"id": f"cam{i}", "uri": str(REPO / CLIPS[i % len(CLIPS)]), "loop": True, "realtime": True}
        for i in range(streams)
    ]
    from pipeline.config import config_from_dict
    from pipeline.service.embedded import EmbeddedService

    config = config_from_dict({"version": 1, "sources": sources, "stages": PIPELINES[pipeline]})
    tally = Tally()
    with EmbeddedService(config, out, live_fps=live_fps) as svc:
        svc.service.tap.observers.append(tally)
        time.sleep(5.0)  # warm up: every stream open and flowing
        ids = [str(s["id"]) for s in sources]
        return [run_phase(svc, tally, ids, v, duration_s / len(PHASES)) for v in PHASES]


def summarise(rows: list[dict[str, Any]]) -> str:
    base = statistics.mean(r["fps"] for r in rows if r["viewers"] == 0)
    table = [
        {
            "viewers": r["viewers"],
            "pipeline fps": f"{r['fps']:.1f}",
            "x 0 viewers": f"{r['fps'] / base:.3f}",
            "p99 ms": f"{r['p99_ms']:.0f}",
            "RSS MB": f"{r['rss_mb']:.0f}",
            "CPU % (1 core)": f"{r['cpu_pct']:.0f}",
            "viewer fps": f"{r['viewer_fps']:.1f}",
        }
        for r in rows
    ]
    lines = [format_table(table)]
    for n in sorted({r["viewers"] for r in rows} - {0}):
        fps = statistics.mean(r["fps"] for r in rows if r["viewers"] == n)
        lines.append(f"cost of {n} viewer(s): {100 * (1 - fps / base):+.1f} % pipeline fps")
    per = defaultdict(list)
    for r in rows:
        if r["viewers"] == 0:
            for sid, fps in r["per_stream"].items():
                per[sid].append(fps)
    lines.append(
        "per-stream fps (0 viewers): " + ", ".join(f"{s} {statistics.mean(v):.1f}" for s, v in per.items())
    )
    return "\n".join(lines)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by `vigil bench serve` and `python -m benchmarks.serve`)."""
    parser.add_argument("--streams", type=int, default=8, help="looped streams (default 8)")
    parser.add_argument(
        "--duration", type=float, default=600, help="seconds of measurement in all (default 600)"
    )
    parser.add_argument(
        "--pipeline", choices=sorted(PIPELINES), default="haar", help="stages behind the streams"
    )
    parser.add_argument("--live-fps", type=float, default=10.0, help="frame rate cap of each live view")
    parser.add_argument("--output", default="out/bench_serve", help="output folder of the run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_options(parser)
    return report(parser.parse_args(argv))


def report(args: argparse.Namespace) -> int:
    """Run the benchmark with parsed options and print its table."""
    rows = run(args.streams, args.duration, args.pipeline, args.live_fps, Path(args.output))
    print(
        f"vigil serve: {args.streams} looped streams, pipeline {args.pipeline}, "
        f"{args.duration:.0f}s in {len(PHASES)} interleaved phases, live views capped at {args.live_fps:g} fps"
    )
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
