"""`sink.clips`: an H.264 MP4 per event, from `pre_roll_s` before it to `post_roll_s` after.

Each source has a ring buffer of its last `pre_roll_s` seconds (`stages.clip_buffer`); an event
opens a clip that starts with the buffered frames, and every event that falls inside a clip
still being written extends it (one clip for a burst of events). A clip is written as
`<id of its first event>.mp4.part` and renamed to `.mp4` when complete, in `<output>/clips/`
by default; retention (`max_clips`, `max_bytes`, `max_age_days`) then deletes the oldest
clips. The events get `clip` (path relative to the output folder) and `clip_offset_s` (where
in the clip they happen), so event sinks after this one carry them. Files are written through
`stages.video_writer` (PyAV libx264, else OpenCV mp4v).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from pipeline.errors import ConfigError, OutputError
from pipeline.frame import Frame, SourceInfo
from pipeline.stage import Options, Stage, StageContext, register
from stages.clip_buffer import ClipFile, ClipWindow, FrameRing, expired_clips
from stages.event_model import OutEvent, out_events, replace_out_events
from stages.sink_paths import output_path, relative_to_output
from stages.video_writer import VideoWriter, open_writer

DEFAULT_FPS = 25.0  # only when neither the SourceInfo nor the run know the source's rate


class ClipsSinkOptions(Options):
    """Options of `sink.clips`. Times are seconds of media time (pts)."""

    folder: str = Field("clips", description="output folder, relative to the run's output folder")
    types: list[str] | None = Field(
        None, description="only events of these types open or extend clips (default: all)"
    )
    pre_roll_s: float = Field(5.0, ge=0, description="seconds of video before the event")
    post_roll_s: float = Field(5.0, ge=0, description="seconds of video after the (last) event")
    max_clips: int | None = Field(1000, ge=1, description="keep at most this many clips (oldest go first)")
    max_bytes: int | None = Field(2_000_000_000, ge=1, description="keep at most this many bytes of clips")
    max_age_days: float | None = Field(7.0, gt=0, description="delete clips older than this")
    buffer_mb: float = Field(
        512.0,
        gt=0,
        description="memory the pre-roll buffer of one source may hold, in MiB of raw frames "
        "(1080p: 6 MiB a frame, so 512 MiB is about 85 frames; a longer pre-roll is cut to fit)",
    )
    annotated: bool = Field(
        False, description="record the rendered picture (when a render ran) instead of the image"
    )


@dataclass
class _Recording:
    window: ClipWindow
    writer: VideoWriter
    part: Path  # being written
    path: Path  # after it is complete
    frames: int = 0


@register("sink.clips")
class ClipsSink(Stage[ClipsSinkOptions]):
    """Write an event clip with pre- and post-roll (see the module doc). Frames pass through with
    their events' `clip` set.

    Summary: clips = folder, written, deleted, codec.
    """

    stateful = True

    def __init__(self, options: ClipsSinkOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self.folder = output_path(context, options.folder)
        self._rings: dict[str, FrameRing] = {}
        self._recording: dict[str, _Recording] = {}
        self._infos: dict[str, SourceInfo] = {}
        self.written: list[Path] = []
        self.deleted = 0
        self.codec = ""

    def setup(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"sink.clips cannot create {self.folder}: {exc.strerror or exc}") from exc

    def start_stream(self, info: SourceInfo) -> None:
        self._infos[info.id] = info

    def process(self, frame: Frame) -> Frame:
        o = self.options
        image = frame.view if o.annotated else frame.image
        ring = self._rings.get(frame.source)
        if ring is None:
            most = max(2, int(o.buffer_mb * 2**20 // max(image.nbytes, 1)))
            ring = self._rings[frame.source] = FrameRing(o.pre_roll_s, most)
        ring.push(frame.pts, image)
        rec = self._recording.get(frame.source)
        if rec is not None and rec.window.done(frame.pts):
            self._finish(frame.source)
            rec = None
        changed: dict[str, OutEvent] = {}
        started = False
        for event in out_events(frame, o.types):
            if rec is None:
                rec, started = self._start(frame.source, event, ring, image.shape[1], image.shape[0]), True
            else:
                rec.window.extend(event.id, event.pts, o.post_roll_s)
            offset = event.pts - rec.window.start_pts
            changed[event.id] = event.with_files(
                clip=relative_to_output(self.context, rec.path), clip_offset_s=offset
            )
        if rec is not None and not started:  # a new clip already has this frame from the buffer
            rec.writer.write(image, frame.pts - rec.window.start_pts)
            rec.frames += 1
        return replace_out_events(frame, changed)

    def _start(self, source: str, event: OutEvent, ring: FrameRing, width: int, height: int) -> _Recording:
        o = self.options
        buffered = ring.since(event.pts - o.pre_roll_s)  # ends with the current frame
        if not self.folder.is_dir():
            self.setup()
        path = self.folder / f"{event.id}.mp4"
        part = path.with_name(path.name + ".part")
        info = self._infos.get(source) or self.context.sources.get(source)
        fps = info.fps if info is not None and info.fps > 0 else DEFAULT_FPS
        # ultrafast: clips are encoded on the frame path, so least CPU wins over file size
        writer = open_writer(
            part, fps, (width, height), muxer="mp4", preset="ultrafast", threads=self.context.threads
        )
        if writer is None:
            raise OutputError(f"sink.clips cannot open {part} for writing")
        self.codec = writer.codec
        rec = _Recording(
            ClipWindow(buffered[0][0], event.pts + o.post_roll_s, [event.id]), writer, part, path
        )
        for pts, image in buffered:
            writer.write(image, pts - rec.window.start_pts)
            rec.frames += 1
        self._recording[source] = rec
        return rec

    def _finish(self, source: str) -> None:
        rec = self._recording.pop(source, None)
        if rec is None:
            return
        rec.writer.release()
        rec.part.replace(rec.path)  # complete: the event's clip path now exists
        self.written.append(rec.path)
        self.log.info("clip %s (%d frames, %d events)", rec.path.name, rec.frames, len(rec.window.event_ids))
        self._enforce_retention()
        self.context.report["clips"] = {
            "folder": str(self.folder),
            "written": len(self.written),
            "deleted": self.deleted,
            "codec": self.codec,
        }

    def _enforce_retention(self) -> None:
        o = self.options
        files = [ClipFile(p, st.st_size, st.st_mtime) for p in self.folder.glob("*.mp4") for st in [p.stat()]]
        max_age_s = o.max_age_days * 86400 if o.max_age_days is not None else None
        for path in expired_clips(files, time.time(), o.max_clips, o.max_bytes, max_age_s):
            path.unlink(missing_ok=True)
            self.deleted += 1

    def end_stream(self, source: str) -> list[Frame]:
        self._finish(source)  # a clip cut short by the end of its source is still complete
        self._rings.pop(source, None)
        return []

    def close(self) -> None:
        for source in list(self._recording):
            self._finish(source)
