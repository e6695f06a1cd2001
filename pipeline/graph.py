"""Build the graph of a pipeline: one node per stage, its links, where the sources send.

Receivers bind first; every socket is then handed to the one thread that uses it. The thread
budget is decided here too (OpenCV's process-wide pool and each stage's share).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2

from pipeline.config import PipelineConfig
from pipeline.curve import CurveKeys
from pipeline.dispatch import PoolPlan
from pipeline.frame import SourceInfo
from pipeline.node import RunHooks, StageNode
from pipeline.rundir import make_run_dir
from pipeline.transport import LinkReceiver, LinkSender, LinkStats, Policy, Transport, endpoint
from pipeline.workers import WorkerSpec

HEAVY_FAMILIES = ("detect", "classify", "filter")  # stages that share the CPU budget


@dataclass
class Graph:
    """The built pipeline: nodes, their links, and where sources send."""

    nodes: list[StageNode]
    stats: dict[str, LinkStats]
    first: str  # address of the first stage's link
    policy: Policy
    transport: Transport
    run_dir: str | None
    leaves: list[str]


def link_policy(config: PipelineConfig, infos: dict[str, SourceInfo]) -> Policy:
    """`auto`: latest when a source is live (a camera must never fall behind), else lossless."""
    policy = config.links.policy
    if policy == "auto":
        return "latest" if any(i.live for i in infos.values()) else "lossless"
    return policy


def thread_budget(config: PipelineConfig) -> tuple[int, dict[str, int]]:
    """(OpenCV threads, threads per stage).

    OpenCV has one process-wide pool, so it gets the whole budget. Each heavy stage gets a
    share that allows about 2x oversubscription: pipeline stages are rarely busy at the same
    instant, and on 2 cores a strict split (1 thread each) measured 25-45% slower than 2 each
    (`vigil bench pipeline`, README). The other stages get one thread (the video sinks' encoder:
    x264's frame threads cost a fifth more CPU a frame; a stage in its own process also runs
    OpenCV on that many threads). `threads:` on a stage overrides its share; the pipeline's
    `threads:` sets the total the heavy stages share and OpenCV's pool.
    """
    total = config.threads or os.cpu_count() or 1
    stages = config.stages
    heavy = [s for s in stages if s.kind.split(".")[0] in HEAVY_FAMILIES] or stages  # none: all share
    share = min(total, max(1, math.ceil(2 * total / sum(s.workers for s in heavy))))
    heavy_ids = {s.id for s in heavy}
    return total, {s.id: s.threads or (share if s.id in heavy_ids else 1) for s in stages}


def build_graph(
    config: PipelineConfig,
    infos: dict[str, SourceInfo],
    output_dir: Path,
    hooks: RunHooks,
    curve: CurveKeys | None = None,
) -> Graph:
    """Every node with its links; `hooks.on_leaf` is given to the leaves only. `infos` is the
    run's own dict of sources (in-process stages see sources added later)."""
    links = config.links
    transport: Transport = "inproc" if links.transport == "auto" else links.transport
    processes = any(s.placement == "process" for s in config.stages)
    run_dir = make_run_dir() if transport == "ipc" or processes else None
    policy = link_policy(config, infos)
    opencv_threads, budget = thread_budget(config)
    cv2.setNumThreads(opencv_threads)
    stages = config.stages
    stats = {s.id: LinkStats(s.id) for s in stages}
    receivers = {
        s.id: LinkReceiver(
            endpoint(transport, s.id, links.host, run_dir), policy, links.capacity, stats[s.id]
        )
        for s in stages
    }
    children: dict[str, list[str]] = {s.id: [] for s in stages}
    for i, s in enumerate(stages[1:], start=1):
        children[config.parent_of(i) or stages[0].id].append(s.id)
    leaves = [sid for sid, kids in children.items() if not kids]
    level = logging.getLogger("vigil").getEffectiveLevel()
    nodes = []
    for s in stages:
        outputs = [LinkSender(receivers[c].address, policy, links.capacity, stats[c]) for c in children[s.id]]
        spec = WorkerSpec(
            s.id, s.kind, s.with_, s.on_error, s.batch, budget[s.id], str(output_dir),
            infos, links.capacity, level, curve=curve,
        )  # fmt: skip
        plan = None
        if s.workers > 1 or s.placement == "process":
            inner: Transport = "ipc" if s.placement == "process" and transport == "inproc" else transport
            plan = PoolPlan(s.workers, s.placement == "process", inner, links.capacity, s.on_error, run_dir)
        node_hooks = hooks if s.id in leaves else dataclasses.replace(hooks, on_leaf=None)
        nodes.append(StageNode(s, spec, receivers[s.id], outputs, node_hooks, plan))
    return Graph(nodes, stats, receivers[stages[0].id].address, policy, transport, run_dir, leaves)
