"""Sources of a pipeline file: a video file, an image folder or glob, a webcam, a stream URL or
synthetic frames, and how a dropped camera is reopened."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from pipeline.config_fields import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_LIMIT,
    MAX_SECONDS,
    ConfigModel,
    ConfigPathError,
    seconds_field,
)

STREAM_SCHEMES = {"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt"}


class ReconnectConfig(ConfigModel):
    """How a camera or stream that drops is reopened (delays grow by doubling)."""

    initial_delay_s: float = seconds_field(0.5, "first wait before reopening, seconds (at most a day)")
    max_delay_s: float = seconds_field(30.0, "longest wait between attempts, seconds (at most a day)")
    max_attempts: int | None = Field(
        default=None, ge=0, description="give up after this many failed reopens (none: never)"
    )


class SourceConfig(ConfigModel):
    """One input: a video file, an image folder or glob, a webcam index, or an RTSP/HTTP URL."""

    id: str = Field("cam0", pattern=r"^[A-Za-z0-9_.-]+$", description="name of the source in results")
    uri: str | int = Field(
        description="file path, folder/glob, webcam index, rtsp:// http(s):// URL or synthetic://WxH"
    )
    realtime: bool = Field(False, description="pace a file at its own fps, like a camera (drops when behind)")
    every: int = Field(1, ge=1, description="keep one frame in N")
    resize: tuple[int, int] | None = Field(
        None, description="[width, height] to resize frames to after capture (at most max_pixels)"
    )
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=1,
        le=MAX_PIXELS_LIMIT,
        description="largest frame accepted, width x height; bigger images and frames are skipped "
        f"with a warning, image files before decoding (default 40 Mpx, at most {MAX_PIXELS_LIMIT})",
    )
    max_frames: int | None = Field(None, ge=1, description="stop after this many emitted frames")
    loop: bool = Field(
        False,
        description="restart a file at its end, from its first frame even with start_s (demos, soak tests)",
    )
    start_s: float = Field(
        0.0,
        ge=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="start a video file this many seconds in (files only; pts stay positions in the file; "
        "`loop: true` restarts at 0, not here)",
    )
    decode_threads: int | None = Field(
        None,
        ge=0,
        le=64,
        description="FFmpeg decoding threads of a video file or stream (webcams ignore it); default: "
        "a file up to 1920x1088 decodes on 1 (the stages keep the other cores; it costs a quarter less "
        "CPU a frame), larger files and streams as FFmpeg chooses; 0: FFmpeg's choice",
    )
    open_timeout_s: float = seconds_field(10.0, "how long opening a stream may take, seconds (at most a day)")
    read_timeout_s: float = seconds_field(
        10.0, "a stream silent this long counts as dropped, seconds (at most a day)"
    )
    reconnect: ReconnectConfig = Field(default_factory=lambda: ReconnectConfig())

    @field_validator("resize")
    @classmethod
    def _positive_size(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and (v[0] <= 0 or v[1] <= 0):
            raise ValueError("must be [width, height] with both > 0")
        return v

    @model_validator(mode="after")
    def _frame_size_bounded(self) -> SourceConfig:
        if self.resize is not None and self.resize[0] * self.resize[1] > self.max_pixels:
            w, h = self.resize
            raise ConfigPathError(
                ("resize",), f"{w}x{h} is {w * h} pixels, more than max_pixels ({self.max_pixels})"
            )
        size = _synthetic_size(self.uri)
        if size is not None and size[0] * size[1] > self.max_pixels:
            raise ConfigPathError(
                ("uri",), f"synthetic {size[0]}x{size[1]} is more than max_pixels ({self.max_pixels})"
            )
        return self

    @model_validator(mode="after")
    def _start_in_files_only(self) -> SourceConfig:
        # a folder or glob is told apart from a file only on disk: the reader ignores start_s there
        kind = uri_kind_by_name(self.uri)
        if self.start_s > 0 and kind is not None:
            what = {"camera": "a webcam", "stream": "a stream", "synthetic": "synthetic frames"}[kind]
            raise ConfigPathError(("start_s",), f"start_s needs a video file, not {what}")
        return self


def uri_kind_by_name(uri: str | int) -> str | None:
    """camera | stream | synthetic when the uri alone says so; None for a file, folder or glob
    (told apart on disk, by `pipeline.sources.classify_uri`)."""
    if isinstance(uri, int) or uri.isdigit():
        return "camera"
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "synthetic":
        return "synthetic"
    return "stream" if scheme in STREAM_SCHEMES else None


def _synthetic_size(uri: str | int) -> tuple[int, int] | None:
    """(w, h) of a `synthetic://WxH` uri; None for other uris or a size the reader will reject."""
    if not isinstance(uri, str) or not uri.lower().startswith("synthetic://"):
        return None
    try:
        w, h = (int(x) for x in urlsplit(uri).netloc.lower().split("x"))
    except ValueError:
        return None
    return w, h
