"""render and the sinks (video, jsonl, images, display), driven directly on real media."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.errors import ConfigError
from pipeline.frame import Detections, Event, Frame, SourceInfo
from pipeline.stage import Stage, StageContext, get_kind
from stages.render import Render, colour_for, format_attributes, format_label

CLIP = "videos/face_headpose_male_smiling_intel.mp4"  # 62 frames, 12.5 fps, 480x270
STILL = "images/face_man_happy_intel_f0008.jpg"


def read_frames(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    images = []
    while len(images) < n:
        ok, image = cap.read()
        assert ok
        image.setflags(write=False)  # like frames that arrived over a link
        images.append(image)
    cap.release()
    return images


def make(kind: str, tmp_path: Path, sources: dict[str, SourceInfo] | None = None, **options: object) -> Stage:
    cls = get_kind(kind)
    context = StageContext(stage_id=kind, output_dir=tmp_path, sources=sources or {})
    stage = cls(cls.Options(**options), context)
    stage.setup()
    return stage


def info(source: str, image: np.ndarray, fps: float = 12.5) -> SourceInfo:
    return SourceInfo(
        id=source, uri=f"{source}.mp4", kind="file", fps=fps, width=image.shape[1], height=image.shape[0]
    )


def frame(
    image: np.ndarray, seq: int = 0, source: str = "cam", det: Detections | None = None, fps: float = 12.5
) -> Frame:
    return Frame(
        source=source,
        seq=seq,
        pts=seq / fps,
        wall=time.time(),
        image=image,
        detections=det if det is not None else Detections.empty(),
    )


def read_back(path: Path) -> tuple[int, float, int, int]:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    result = (
        n,
        cap.get(cv2.CAP_PROP_FPS),
        int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    cap.release()
    return result


# --- render -------------------------------------------------------------------------------


def test_attribute_text() -> None:
    attrs = {"emotion": "happy", "emotion_score": 0.876, "gender": "female", "age": 31.4}
    assert format_attributes(attrs) == ["happy 0.88", "F 31y"]
    assert format_label("face", 0.93, attrs) == "face 0.93 | happy 0.88 | F 31y"
    assert format_label("face", 0.93, attrs, track_id=7, show_scores=False) == "#7 face | happy | F 31y"
    assert format_label("face", 0.93, attrs, show_attributes=False) == "face 0.93"
    assert format_attributes({"gender": "M", "age": None, "mask": True, "speed": 1.234}) == [
        "M",
        "mask=True",
        "speed=1.23",
    ]
    assert format_attributes({"emotion": {"sad": 0.1, "happy": 0.7}}) == ["happy 0.70"]
    assert format_attributes({"age": float("nan"), "colour": "red", "colour_conf": 0.5}) == [
        "colour=red 0.50"
    ]


def test_colours_are_deterministic() -> None:
    assert colour_for("track:7") == colour_for("track:7")
    assert colour_for("face") != colour_for(
        "person"
    )  # differ for these two (checked, not guaranteed in general)


def test_render_draws_near_boxes_only_and_keeps_image(media: Path, tmp_path: Path) -> None:
    image = cv2.imread(str(media / STILL))
    before = image.copy()
    image.setflags(write=False)
    det = Detections.create(
        [[200, 40, 290, 130], [20, 150, 80, 220]],
        score=[0.93, 0.5],
        label=["face", "face"],
        attributes={"emotion": ["happy", "sad"]},
    )
    out = make("render", tmp_path, show_fps=False).process(frame(image, det=det))
    assert np.array_equal(out.image, before) and out.image is image
    changed = np.any(out.annotated != image, axis=2)
    assert changed.any()
    allowed = np.zeros_like(changed)
    for (x1, y1, x2, y2), score, emotion in zip(
        det.xyxy.astype(int), det.score, det.attributes["emotion"], strict=True
    ):
        (tw, th), base = cv2.getTextSize(
            format_label("face", float(score), {"emotion": emotion}), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
        )
        allowed[max(0, y1 - th - base - 4) : y2 + 3, x1 - 3 : max(x2, x1 + tw + 2) + 3] = True
    assert not (changed & ~allowed).any()


def test_track_colour_is_stable_across_frames(media: Path, tmp_path: Path) -> None:
    images = read_frames(media / CLIP, 3)
    render = make("render", tmp_path, show_fps=False, trail_length=5)
    assert isinstance(render, Render)
    seen = []
    for seq, (image, x) in enumerate(zip(images, (100, 150, 220), strict=True)):
        det = Detections.create(
            [[x, 60, x + 80, 200], [10, 10, 60, 60]], label=["face", "face"], track_id=[7, 3]
        )
        out = render.process(frame(image, seq, det=det))
        seen.append(tuple(int(v) for v in out.annotated[130, x]))  # middle of the left edge
    assert seen[0] == seen[1] == seen[2] == render.colour("face", 0, 7)
    assert render.colour("face", 0, 7) != render.colour("face", 0, 3)
    assert render._trails[("cam", 7)] and len(render._trails[("cam", 7)]) == 3
    render.end_stream("cam")
    assert not render._trails


def test_render_draws_event_geometry_and_counts(media: Path, tmp_path: Path) -> None:
    image = read_frames(media / CLIP, 1)[0]
    event = Event(
        "line_cross", "door", track_id=1, data={"line": [[0.1, 0.5], [0.9, 0.5]], "counts": {"in": 3}}
    )
    render = make("render", tmp_path, show_fps=False)
    first = render.process(frame(image).add_events([event])).annotated
    row = image.shape[0] // 2
    assert np.any(first[row, 100:380] != image[row, 100:380])
    later = render.process(frame(image, 1)).annotated  # geometry persists without new events
    assert np.array_equal(later, first)
    with pytest.raises(ValidationError):
        make("render", tmp_path, colour_by="rainbow")


# --- sinks --------------------------------------------------------------------------------


def test_video_sink_keeps_frame_count_size_and_fps(media: Path, tmp_path: Path) -> None:
    images = read_frames(media / CLIP, 12)
    sink = make("sink.video", tmp_path)
    sink.start_stream(info("cam", images[0]))
    for seq, image in enumerate(images):
        f = frame(image, seq)
        assert sink.process(f) is f
    sink.end_stream("cam")
    sink.close()
    sink.close()  # idempotent
    assert read_back(tmp_path / "annotated.mp4") == (12, 12.5, 480, 270)


def test_video_sink_one_file_per_source_and_resizes(media: Path, tmp_path: Path) -> None:
    images = read_frames(media / CLIP, 6)
    sources = {s: info(s, images[0], fps) for s, fps in (("door", 12.5), ("yard", 25.0))}
    sink = make("sink.video", tmp_path, sources, path="out/v.avi")
    for s in sources.values():
        sink.start_stream(s)
    for seq, image in enumerate(images):
        sink.process(frame(image, seq, "door"))
        small = cv2.resize(image, (240, 134)) if seq >= 3 else image  # the camera changed mode
        sink.process(frame(small, seq, "yard"))
    sink.close()
    assert read_back(tmp_path / "out/v_door.avi") == (6, 12.5, 480, 270)
    assert read_back(tmp_path / "out/v_yard.avi") == (6, 25.0, 480, 270)


def test_video_sink_bad_writer_names_path_and_fourcc(media: Path, tmp_path: Path) -> None:
    image = read_frames(media / CLIP, 1)[0]
    sink = make("sink.video", tmp_path, fourcc="XXXX", path="{source}.mp4")
    with pytest.raises(ConfigError, match=r"cam\.mp4.*'XXXX'"):
        sink.process(frame(image))
    sink.close()


def test_jsonl_lines_are_frame_records(media: Path, tmp_path: Path) -> None:
    image = read_frames(media / CLIP, 1)[0]
    det = Detections.create(
        [[1.234, 2, 30, 40]],
        score=[0.9],
        label=["face"],
        track_id=[4],
        attributes={"age": [31.0], "gender": ["male"]},
    )
    frames = [
        frame(image, 0),
        frame(image, 1, det=det),
        frame(image, 2).add_events([Event("enter", "zone", 4, {"zone": "a"})]),
    ]
    sink = make("sink.jsonl", tmp_path)
    for f in frames:
        assert sink.process(f) is f
    sink.close()
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [f.to_record() for f in frames]
    assert lines[1] == json.dumps(frames[1].to_record())
    assert json.loads(lines[1])["detections"][0]["attributes"] == {"age": 31.0, "gender": "male"}

    sparse = make("sink.jsonl", tmp_path, path="sparse.jsonl", include_empty=False)
    for f in frames:
        sparse.process(f)
    sparse.close()
    assert [json.loads(x)["seq"] for x in (tmp_path / "sparse.jsonl").read_text().splitlines()] == [1, 2]


def test_jsonl_is_readable_before_close(media: Path, tmp_path: Path) -> None:
    image = read_frames(media / CLIP, 1)[0]
    sink = make("sink.jsonl", tmp_path)
    sink.process(frame(image))
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 1  # flushed: a crash keeps it
    sink.close()


def test_images_sink_saves_only_frames_with_detections(media: Path, tmp_path: Path) -> None:
    images = read_frames(media / CLIP, 6)
    face = Detections.create([[200, 40, 290, 130]], label=["face"])
    sink = make("sink.images", tmp_path)
    for seq, image in enumerate(images):
        sink.process(frame(image, seq, det=face if seq % 2 else None))
    sink.close()
    saved = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert saved == ["cam_000001.jpg", "cam_000003.jpg", "cam_000005.jpg"]
    assert cv2.imread(str(tmp_path / "snapshots" / saved[0])).shape == images[0].shape

    limited = make(
        "sink.images",
        tmp_path,
        folder="few",
        labels=["face"],
        every_n=2,
        max_images=1,
        filename="{source}-{seq}.png",
    )
    for seq, image in enumerate(images):
        limited.process(frame(image, seq, det=face))
    assert sorted(p.name for p in (tmp_path / "few").iterdir()) == ["cam-0.png"]
    with pytest.raises(ValidationError, match="fields are"):
        make("sink.images", tmp_path, filename="{camera}.jpg")


def test_display_on_headless_opencv_says_what_to_install(tmp_path: Path) -> None:
    if cv2.currentUIFramework():
        pytest.skip("this OpenCV has a GUI")
    with pytest.raises(ConfigError, match=r"opencv-python<5"):
        make("sink.display", tmp_path)


def test_render_draws_every_zone_of_one_zone_stage():
    # regression: overlays were keyed by stage only, so a stage with two zones drew just the last one
    from pipeline.frame import Event

    cls = get_kind("render")
    stage = cls(cls.Options(), StageContext(stage_id="draw"))
    stage.setup()
    image = np.zeros((100, 200, 3), np.uint8)
    left = Event(
        "zone_occupancy",
        "zones",
        None,
        {"name": "left", "zone": [[10, 10], [60, 10], [60, 60], [10, 60]], "counts": {"left": 0, "right": 0}},
    )
    right = Event(
        "zone_occupancy",
        "zones",
        None,
        {
            "name": "right",
            "zone": [[120, 10], [180, 10], [180, 60], [120, 60]],
            "counts": {"left": 0, "right": 0},
        },
    )
    out = stage.process(Frame("cam", 0, 0.0, 0.0, image, events=(left, right)))
    assert out.annotated[10:61, 10].any() and out.annotated[10:61, 120].any()  # both polygons' left edges


class FakeClock:
    """A monotonic clock that moves on by a chosen step on every reading."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 100.0, step

    def monotonic(self) -> float:
        self.now += self.step
        return self.now


def render_clip(
    images: list[np.ndarray],
    tmp_path: Path,
    live: bool,
    step: float,
    monkeypatch: pytest.MonkeyPatch,
    **options: object,
) -> list[np.ndarray]:
    """`frame.annotated` of each image, rendered by a fresh `render` stage with a clock ticking `step` s."""
    import stages.render

    monkeypatch.setattr(stages.render, "time", FakeClock(step))
    source = replace(info("cam", images[0]), live=live, kind="camera" if live else "file")
    stage = make("render", tmp_path, sources={"cam": source}, **options)
    stage.start_stream(source)
    det = Detections.create([[40, 30, 200, 180]], [0.9], [0], ["face"], track_id=[3])
    out = [stage.process(frame(image, seq, det=det)) for seq, image in enumerate(images)]
    return [f.annotated for f in out if f is not None and f.annotated is not None]


def test_render_of_a_recorded_file_is_the_same_in_every_run(
    media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # regression: wall-clock fps was drawn on every frame, so two renders of one file differed
    images = read_frames(media / CLIP, 4)
    first = render_clip(images, tmp_path, False, 0.05, monkeypatch)
    second = render_clip(images, tmp_path, False, 0.11, monkeypatch)
    assert len(first) == 4 and all(a.tobytes() == b.tobytes() for a, b in zip(first, second, strict=True))
    forced = render_clip(images, tmp_path, False, 0.05, monkeypatch, show_fps=True)
    assert forced[-1][:30, :160].tobytes() != first[-1][:30, :160].tobytes()  # show_fps: true draws it


def test_render_shows_fps_on_a_live_source(
    media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = read_frames(media / CLIP, 3)
    plain = render_clip(images, tmp_path, True, 0.1, monkeypatch, show_fps=False)
    shown = render_clip(images, tmp_path, True, 0.1, monkeypatch)
    tag = np.any(shown[-1] != plain[-1], axis=2)
    assert tag[:30, :160].sum() > 100 and not tag[40:].any()  # the fps tag, top left, nothing else
    stage = make("render", tmp_path)
    stage.start_stream(replace(info("cam", images[0]), live=True))
    assert stage.shows_fps("cam") and not stage.shows_fps("other")  # unknown sources: no fps
