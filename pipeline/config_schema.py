"""Stages, links and the whole pipeline file as typed models (loaded by pipeline.config)."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config_fields import (
    MAX_BATCH,
    MAX_LINK_CAPACITY,
    MAX_SOURCES,
    MAX_STAGES,
    ConfigModel,
    ConfigPathError,
    check_cpu_bound,
    seconds_field,
)
from pipeline.source_config import SourceConfig


class StageConfig(ConfigModel):
    """One stage of the pipeline."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="unique name of this stage")
    kind: str = Field(description="registered stage kind, e.g. detect.haar (see `vigil stages`)")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="options of the kind")
    after: str | None = Field(
        None, description="id of the stage feeding this one (default: the previous stage)"
    )
    placement: Literal["thread", "process"] = Field(
        "thread", description="run in a thread or its own process"
    )
    workers: int = Field(
        1,
        ge=1,
        description="replicas; results are merged back into sequence order (at most 4 x the CPU cores)",
    )
    on_error: Literal["skip", "stop"] = Field(
        "skip", description="on an exception: pass the frame on, or stop the run"
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads this stage may use (default: a fair share of the run's threads for detect, "
        "classify and filter stages, 1 for the others; at most 4 x the CPU cores)",
    )
    batch: int = Field(
        1,
        ge=1,
        le=MAX_BATCH,
        description=f"frames handed to process_batch at once when they are waiting (at most {MAX_BATCH})",
    )
    options: Any = Field(None, exclude=True)  # the validated Options of the kind, filled in by load

    @field_validator("with_", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("workers", "threads")
    @classmethod
    def _cpu_bound(cls, v: int | None) -> int | None:
        return check_cpu_bound(v)


class CurveConfig(ConfigModel):
    """ZeroMQ CURVE keys for tcp links (make them with `vigil keys gen DIR NAME`)."""

    secret_key: str = Field(description="this run's NAME.key_secret file")
    authorized: str | None = Field(
        default=None,
        description="a folder of public *.key files (or one file) allowed to connect; the run's own key always is",
    )


class LinksConfig(ConfigModel):
    """Defaults for the links between stages."""

    policy: Literal["auto", "lossless", "latest"] = Field(
        default="auto",
        description="lossless: every frame, backpressure; latest: newest frame only, drops counted; "
        "auto: lossless for files and folders, latest for cameras and streams",
    )
    capacity: int = Field(
        default=4,
        ge=1,
        le=MAX_LINK_CAPACITY,
        description=f"frames a link holds before backpressure or drops (at most {MAX_LINK_CAPACITY})",
    )
    transport: Literal["auto", "inproc", "ipc", "tcp"] = Field(
        default="auto", description="auto: inproc between threads, ipc to processes; tcp forces loopback TCP"
    )
    host: str = Field(
        default="127.0.0.1", description="address tcp links bind to (never all interfaces unless told)"
    )
    stall_timeout_s: float = seconds_field(
        120.0, "abort when no frame moves anywhere for this long, seconds (at most a day)"
    )
    curve: CurveConfig | None = Field(
        default=None, description="encrypt tcp links and let in only authorized keys (ZeroMQ CURVE)"
    )
    insecure: bool = Field(
        default=False, description="allow tcp links on a non-loopback host without CURVE (not recommended)"
    )

    @model_validator(mode="after")
    def _exposed_needs_curve(self) -> LinksConfig:
        if not _is_loopback(self.host) and self.curve is None and not self.insecure:
            raise ConfigPathError(
                ("host",),
                f"{self.host} is reachable from other hosts: set links.curve (keys from `vigil keys gen`), "
                "or links.insecure: true to accept anyone on the network",
            )
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve anywhere
        return False


class PipelineConfig(ConfigModel):
    """A pipeline file."""

    version: Literal[1] = 1
    name: str | None = None
    description: str | None = None
    sources: list[SourceConfig] = Field(
        default_factory=list, max_length=MAX_SOURCES, description=f"inputs (at most {MAX_SOURCES})"
    )
    stages: list[StageConfig] = Field(
        min_length=1, max_length=MAX_STAGES, description=f"at most {MAX_STAGES}"
    )
    links: LinksConfig = Field(default_factory=lambda: LinksConfig())
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for the whole run (default: all cores; at most 4 x the CPU cores)",
    )

    @field_validator("threads")
    @classmethod
    def _cpu_bound(cls, v: int | None) -> int | None:
        return check_cpu_bound(v)

    @model_validator(mode="after")
    def _check_graph(self) -> PipelineConfig:
        ids = [s.id for s in self.stages]
        seen: set[str] = set()
        for i, stage in enumerate(self.stages):
            if stage.id in seen:
                raise ConfigPathError(("stages", i, "id"), f"duplicate stage id {stage.id!r}")
            if stage.after is not None and stage.after not in ids[:i]:
                where = "a later stage" if stage.after in ids else "no stage"
                raise ConfigPathError(
                    ("stages", i, "after"), f"{stage.after!r} is {where}; `after` must name an earlier stage"
                )
            seen.add(stage.id)
        src_ids = [s.id for s in self.sources]
        if len(set(src_ids)) != len(src_ids):
            raise ConfigPathError(("sources",), f"source ids must be unique, got {src_ids}")
        return self

    def stage(self, stage_id: str) -> StageConfig:
        return next(s for s in self.stages if s.id == stage_id)

    def parent_of(self, index: int) -> str | None:
        """Id of the stage feeding stage `index` (None: the sources)."""
        stage = self.stages[index]
        if stage.after is not None:
            return stage.after
        return self.stages[index - 1].id if index > 0 else None
