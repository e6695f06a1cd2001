"""The run summary (summary.json): status, timings, sources, per-stage figures, models."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.errors import SourceError, StageError
from pipeline.frame import SourceInfo
from pipeline.metrics import StageSummary, cpu_ms_per_frame


@dataclass
class RunResult:
    status: str  # completed | stopped | failed | aborted
    exit_code: int
    summary: dict[str, Any]


@dataclass
class SourceOutcome:
    """How one source's stream went, as the summary reports it."""

    info: SourceInfo
    frames_done: int
    end: str | None  # eos | stopped | removed | error | aborted (None: never started)
    error: str | None = None
    cpu_s: float | None = None  # its capture thread's CPU (reading and decoding)


class NodeFigures(Protocol):
    """What the summary reads from a node."""

    @property
    def id(self) -> str: ...

    @property
    def report(self) -> dict[str, Any]: ...

    def figures(self) -> StageSummary: ...


@dataclass
class RunFacts:
    """What the runner knows at the end of a run."""

    started: float
    processing_from: float | None
    failures: list[str]
    failure_code: int
    aborted: bool
    stop_requested: bool
    output_dir: str
    links: dict[str, Any]


def outcome(facts: RunFacts, sources: Iterable[SourceOutcome]) -> tuple[str, int, str | None]:
    """(status, exit code, error) of a run."""
    failed_sources = [s for s in sources if s.end == "error"]
    if facts.failures:
        return "failed", facts.failure_code or StageError.exit_code, facts.failures[0]
    if facts.aborted:
        return "aborted", 130, None
    if failed_sources:  # a source that broke is not a completed run, even when the others ended well
        first = failed_sources[0]
        return (
            "failed",
            SourceError.exit_code,
            f"source {first.info.id} failed: {first.error or 'capture error'}",
        )
    if facts.stop_requested or any(s.end in ("stopped", "aborted") for s in sources):
        return "stopped", 130, None
    return "completed", 0, None


def build_summary(
    facts: RunFacts, sources: Mapping[str, SourceOutcome], nodes: Iterable[NodeFigures]
) -> RunResult:
    ended = time.time()
    duration = ended - facts.started
    processing_from = facts.processing_from or ended
    status, code, error = outcome(facts, sources.values())
    frames = sum(s.frames_done for s in sources.values())
    stages: dict[str, dict[str, Any]] = {}
    models: list[Any] = []
    for n in nodes:
        stages[n.id] = {**n.figures(), **({"report": dict(n.report)} if n.report else {})}
        models += n.report.get("models", [])
    summary: dict[str, Any] = {
        "status": status,
        "exit_code": code,
        "error": error,
        "errors": list(facts.failures) or ([error] if error else []),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(facts.started)),
        "duration_s": round(duration, 3),
        "setup_s": round(processing_from - facts.started, 3),  # opening sources, loading models
        "processing_s": round(ended - processing_from, 3),  # first frame captured to the end
        "frames": frames,
        "fps": round(frames / duration, 2) if duration > 0 else None,
        "output_dir": facts.output_dir,
        "links": facts.links,
        "sources": {sid: _source_entry(s) for sid, s in sources.items()},
        "stages": stages,
    }
    summary["models"] = models
    return RunResult(status, code, summary)


def _source_entry(s: SourceOutcome) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "uri": s.info.uri,
        "kind": s.info.kind,
        "fps": s.info.fps,
        "size": [s.info.width, s.info.height],
        "frames_announced": s.info.frames,
        "frames_done": s.frames_done,
        "end": s.end,
    }
    if s.error:
        entry["error"] = s.error
    cpu = cpu_ms_per_frame(s.cpu_s, s.frames_done)  # reading and decoding, as stages report theirs
    if cpu is not None:
        entry["cpu_ms_per_frame"] = cpu
    return entry
