"""Prometheus metrics of a running pipeline (prometheus-client), names prefixed `vigil_`.

Counters and gauges are read from `Runner.status()` when Prometheus scrapes (nothing is
counted twice, nothing runs on the frame path); latencies are histograms observed from each
result frame's per-stage timings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.frame import Frame
from pipeline.status import RunStatus

STATES = ("starting", "running", "reconnecting", "ended", "error")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RunCollector(Collector):
    """Per stage and per source counters and gauges, read from a status snapshot at scrape time."""

    def __init__(self, status: Callable[[], RunStatus]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        st = self.status()
        stage_metrics = {
            "frames_in": CounterMetricFamily("vigil_stage_frames_in", "frames received", labels=["stage"]),
            "frames_out": CounterMetricFamily("vigil_stage_frames", "frames processed", labels=["stage"]),
            "drops": CounterMetricFamily(
                "vigil_stage_drops", "frames dropped on its input link", labels=["stage"]
            ),
            "errors": CounterMetricFamily("vigil_stage_errors", "frames it failed on", labels=["stage"]),
            "restarts": CounterMetricFamily("vigil_stage_restarts", "worker restarts", labels=["stage"]),
            "invalid": CounterMetricFamily(
                "vigil_stage_invalid", "messages its input link refused", labels=["stage"]
            ),
        }
        depth = GaugeMetricFamily(
            "vigil_stage_queue_depth", "messages waiting on its input", labels=["stage"]
        )
        up = GaugeMetricFamily("vigil_stage_up", "1 while the stage runs", labels=["stage", "kind"])
        cpu = CounterMetricFamily(
            "vigil_stage_cpu_seconds",
            "CPU of the stage's own thread (stages in one thread; runtimes' worker threads not included)",
            labels=["stage"],
        )
        for s in st.stages:
            for attr, family in stage_metrics.items():
                family.add_metric([s.id], getattr(s, attr))
            depth.add_metric([s.id], s.queue_depth)
            up.add_metric([s.id, s.kind], 1.0 if s.alive else 0.0)
            if s.cpu_seconds is not None:
                cpu.add_metric([s.id], s.cpu_seconds)
        yield from stage_metrics.values()
        yield depth
        yield up
        yield cpu
        yield _delivery(st)
        state = GaugeMetricFamily(
            "vigil_source_state", "1 for the state the source is in", labels=["source", "state"]
        )
        frames = CounterMetricFamily("vigil_source_frames", "frames through the pipeline", labels=["source"])
        drops = CounterMetricFamily("vigil_source_drops", "frames dropped on the way", labels=["source"])
        reconnects = CounterMetricFamily(
            "vigil_source_reconnects", "drops it came back from", labels=["source"]
        )
        fps = GaugeMetricFamily("vigil_source_fps", "frames per second, last seconds", labels=["source"])
        for src in st.sources:
            for name in STATES:
                state.add_metric([src.id, name], 1.0 if src.state == name else 0.0)
            frames.add_metric([src.id], src.frames)
            drops.add_metric([src.id], src.drops)
            reconnects.add_metric([src.id], src.reconnects)
            fps.add_metric([src.id], src.fps)
        yield from (state, frames, drops, reconnects, fps)
        yield GaugeMetricFamily("vigil_up", "1 while the pipeline runs", value=1.0 if st.running else 0.0)


def _delivery(st: RunStatus) -> CounterMetricFamily:
    """Event sinks' messages by outcome: queued, sent, dropped (outbox full), failed."""
    family = CounterMetricFamily(
        "vigil_event_messages", "event sink messages by outcome", labels=["stage", "outcome"]
    )
    for s in st.stages:
        for outcome, n in s.delivery:
            family.add_metric([s.id, outcome], n)
    return family


class LatencyObserver:
    """Observes each result frame's per-stage times into histograms (stage, and model for
    stages that run one)."""

    def __init__(self, registry: CollectorRegistry, status: Callable[[], RunStatus]) -> None:
        self.stage = Histogram(
            "vigil_stage_latency_seconds", "time a stage spent on a frame", ["stage"],
            registry=registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.model = Histogram(
            "vigil_model_inference_seconds", "time of the stage running the model, per frame",
            ["model", "stage"], registry=registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.status = status
        self._models: dict[str, tuple[str, ...]] = {}  # stage -> the models it runs
        self._known: set[str] = set()  # stages whose models were looked up

    def _models_of(self, stage: str) -> tuple[str, ...]:
        if stage not in self._known:  # once per stage: its report is set before its first frame
            self._known.add(stage)
            self._models.update({s.id: s.models for s in self.status().stages if s.models})
        return self._models.get(stage, ())

    def __call__(self, frame: Frame) -> None:
        for stage, seconds in frame.timings.items():
            self.stage.labels(stage).observe(seconds)
            for model in self._models_of(stage):
                self.model.labels(model, stage).observe(seconds)


def build_registry(status: Callable[[], RunStatus]) -> tuple[CollectorRegistry, LatencyObserver]:
    """A registry of its own (several services may live in one test process)."""
    registry = CollectorRegistry()
    registry.register(RunCollector(status))
    return registry, LatencyObserver(registry, status)
