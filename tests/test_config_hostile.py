"""Hostile pipeline files: every one is a one-line ConfigError (exit 2), found before anything
expands, recurses or allocates; every count that becomes threads, processes or buffers is bounded.

Each case is a file on disk loaded the way `vigil validate` / `vigil run` load it.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import SourceConfig, StageConfig, load_config, max_threads
from pipeline.docs import list_kinds
from pipeline.errors import ConfigError
from pipeline.yaml_input import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES

HEAD = "stages:\n  - id: a\n    kind: render\n"


def write(tmp_path: Path, text: str | bytes, name: str = "pipe.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "Traceback" not in message, message
    return message


def one_line(path: Path, overrides: tuple[str, ...] = ()) -> str:
    message = error(path, overrides)
    assert "\n" not in message, message
    return message


def billion_laughs(depth: int) -> str:
    text = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, depth + 1):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    return HEAD + text


# ------------------------------------------------------------------------------------ aliases


@pytest.mark.timeout(60)
@pytest.mark.parametrize("depth", [7, 9, 30])
def test_alias_bomb_is_refused_before_expansion(tmp_path: Path, depth: int) -> None:
    """Depth 7 took 8.6 s and 1.1 GB in validation, depth 9 ended in MemoryError."""
    path = write(tmp_path, billion_laughs(depth))
    assert len(path.read_bytes()) < 100 * depth  # a few hundred bytes
    message = one_line(path)
    assert (
        message
        == f"{path}: a4: expands to more than {MAX_VALUES} values (YAML aliases repeat what they name) (line 8)"
    )


@pytest.mark.timeout(60)
def test_alias_bomb_exit_2_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, billion_laughs(9))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expands to more than" in err and "(line 8)" in err, err


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "x: &x [1, *x]\n")
    assert one_line(path) == f"{path}: x[1]: alias *x refers to itself (line 4)"


def test_small_anchors_still_work(tmp_path: Path) -> None:
    """Anchors and merge keys are fine when they stay small: a shared reconnect block."""
    path = write(
        tmp_path,
        """
        sources:
          - id: door
            uri: rtsp://cam/door
            reconnect: &rc {initial_delay_s: 1, max_delay_s: 5}
          - id: yard
            uri: rtsp://cam/yard
            reconnect: {<<: *rc, max_attempts: 3}
        stages:
          - id: a
            kind: render
        """,
    )
    config = load_config(path)
    assert config.sources[1].reconnect.max_delay_s == 5 and config.sources[1].reconnect.max_attempts == 3


# ---------------------------------------------------------------------------- nesting, bytes


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_a_config_error(tmp_path: Path, style: str) -> None:
    """1,000-3,000 levels used to end in RecursionError, reported as an internal error (exit 1)."""
    n = 3000 if style == "flow" else 1000  # 1000 indented lines stay under the file size limit
    if style == "flow":
        text = HEAD + "    with:\n      x: " + "[" * n + "]" * n + "\n"
    else:
        text = (
            HEAD
            + "    with:\n"
            + "".join(" " * (6 + i) + f"k{i}:\n" for i in range(n))
            + " " * (6 + n)
            + "k: 1\n"
        )
    path = write(tmp_path, text)
    message = one_line(path)
    assert f"nested deeper than {MAX_DEPTH} levels (line " in message, message
    assert message.startswith(f"{path}: stages[0].with."), message


def test_nesting_within_the_limit_is_fine(tmp_path: Path) -> None:
    depth = MAX_DEPTH - 6  # stages[0].with.x takes the first levels
    path = write(tmp_path, HEAD + "    with:\n      x: " + "[" * depth + "]" * depth + "\n")
    assert "unknown option" in error(path)  # got as far as the stage's own options


def test_deep_nesting_through_aliases_is_refused(tmp_path: Path) -> None:
    chain = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200))
    assert f"nested deeper than {MAX_DEPTH} levels once aliases are expanded" in one_line(
        write(tmp_path, HEAD + chain)
    )


def test_latin1_file_names_the_byte_and_line(tmp_path: Path) -> None:
    """Was UnicodeDecodeError -> internal error, exit 1."""
    path = write(tmp_path, (HEAD + "name: café\n").encode("latin-1"))
    assert (
        one_line(path) == f"{path}: not UTF-8 text: byte 0xe9 at line 4, column 10 (save the file as UTF-8)"
    )


def test_control_character_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "name: a\x00b\n")
    assert one_line(path) == f"{path}: not valid YAML: character #x0000 is not allowed (line 4, column 8)"


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "# " + "x" * MAX_FILE_BYTES + "\n")
    assert one_line(path) == f"{path}: larger than {MAX_FILE_BYTES} bytes; a pipeline file is a few KB"


def test_a_directory_is_not_a_pipeline_file(tmp_path: Path) -> None:
    assert one_line(tmp_path) == f"{tmp_path}: no such pipeline file"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("when: 2001-13-45\n", "cannot read this value (month must be in 1..12) (line 4, column 7)"),
        ("n: " + "9" * 5000 + "\n", "cannot read this value (Exceeds the limit"),
        ("? [a, b]\n: 1\n", "a key must be a plain value, not a list or mapping (line 4, column 3)"),
        ("x: *nowhere\n", "found undefined alias 'nowhere' (line 4, column 4)"),
        ("x: !!python/object:os.system x\n", "could not determine a constructor"),
    ],
    ids=["bad_date", "huge_int", "list_as_key", "undefined_alias", "python_tag"],
)
def test_values_yaml_cannot_construct(tmp_path: Path, text: str, fragment: str) -> None:
    message = one_line(write(tmp_path, HEAD + text))
    assert "not valid YAML: " in message and fragment in message, message


@pytest.mark.parametrize(
    "text",
    ["x: 1\n" + HEAD + "name: caf\xe9\n", HEAD + "with: [" * 3000],
    ids=["latin1", "nesting"],
)
def test_cli_exit_2_not_internal_error(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, text.encode("latin-1"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "internal error" not in err and err.count("\n") == 1, err


def test_set_value_goes_through_the_same_limits() -> None:
    configs = Path(__file__).resolve().parents[1] / "configs" / "faces_haar.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(configs, ["stages.faces.with.min_size=" + "[" * 3000])
    assert "value is not valid YAML" in str(info.value) and "nested deeper than" in str(info.value)


# ------------------------------------------------------------------------------------ bounds


def stage_with(tmp_path: Path, extra: str, kind: str = "detect.haar") -> Path:
    return write(tmp_path, f"stages:\n  - id: a\n    kind: {kind}\n" + extra)


@pytest.mark.parametrize("key", ["threads", "workers"])
def test_stage_threads_and_workers_bounded_by_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """`threads: 1000000` made OpenCV start ~32,000 threads."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # what the bound is computed from
    assert load_config(stage_with(tmp_path, f"    {key}: 8\n")).stages[0].model_dump()[key] == 8
    message = error(stage_with(tmp_path, f"    {key}: 1000000\n"))
    assert f"stages[0].{key}: must be <= 8 (4 x the 2 CPU cores here) (line 4)" in message, message


def test_run_threads_bounded_by_cores(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + f"threads: {max_threads() + 1}\n")
    assert f"threads: must be <= {max_threads()} (4 x the {os.cpu_count()} CPU cores here) (line 4)" in error(
        path
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("    batch: 100000\n", "stages[0].batch: must be <= 256 (line 4)"),
        ("links:\n  capacity: 100000\n", "links.capacity: must be <= 64 (line 5)"),
        (
            "links:\n  stall_timeout_s: .inf\n",
            "links.stall_timeout_s: input should be a finite number (line 5)",
        ),
        ("links:\n  stall_timeout_s: 1e300\n", "links.stall_timeout_s: must be <= 86400.0 (line 5)"),
    ],
    ids=["batch", "capacity", "infinite_timeout", "huge_timeout"],
)
def test_buffer_counts_bounded(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in error(stage_with(tmp_path, text))


def test_stage_and_source_counts_bounded(tmp_path: Path) -> None:
    stages = "".join(f"  - id: s{i}\n    kind: detect.haar\n" for i in range(65))
    assert "stages: has too many items (at most 64) (line 2)" in error(write(tmp_path, "stages:\n" + stages))
    srcs = "".join(f"  - {{id: c{i}, uri: rtsp://h/{i}}}\n" for i in range(65))
    assert "sources: has too many items (at most 64) (line 2)" in error(
        write(tmp_path, "sources:\n" + srcs + HEAD)
    )


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        (
            "{uri: a.mp4, resize: [100000, 100000]}",
            "sources[0].resize: 100000x100000 is 10000000000 pixels, more than max_pixels (40000000) (line 2)",
        ),
        (
            "{uri: a.mp4, resize: [400, 300], max_pixels: 100000}",
            "sources[0].resize: 400x300 is 120000 pixels, more than max_pixels (100000) (line 2)",
        ),
        (
            "{uri: 'synthetic://100000x100000'}",
            "sources[0].uri: synthetic 100000x100000 is more than max_pixels",
        ),
        ("{uri: a.mp4, max_pixels: 1000000000000}", "sources[0].max_pixels: must be <= 268435456 (line 2)"),
        ("{uri: a.mp4, max_pixels: 0}", "sources[0].max_pixels: must be >= 1 (line 2)"),
    ],
    ids=["resize_default_limit", "resize_own_limit", "synthetic", "max_pixels_too_big", "max_pixels_zero"],
)
def test_frame_size_bounded(tmp_path: Path, source: str, fragment: str) -> None:
    message = error(write(tmp_path, f"sources:\n  - {source}\n" + HEAD))
    assert fragment in message, message


def test_max_pixels_default_and_override(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - {uri: a.mp4, resize: [8000, 5000]}\n" + HEAD)
    assert load_config(path).sources[0].max_pixels == 40_000_000
    assert "more than max_pixels (1000)" in error(path, ("sources.0.max_pixels=1000",))


def test_bounds_are_documented_where_vigil_stages_shows_them() -> None:
    for field in ("threads", "workers"):
        assert "at most 4 x the CPU cores" in (StageConfig.model_fields[field].description or "")
    assert "at most 256" in (StageConfig.model_fields["batch"].description or "")
    assert "40 Mpx" in (SourceConfig.model_fields["max_pixels"].description or "")
    text = list_kinds()
    assert "max_pixels" in text and "at most 4 x the CPU cores" in text


# ------------------------------------------------------------------------------ --source values


def test_with_sources_keeps_options_and_bounds() -> None:
    from pipeline.config import with_sources

    configs = Path(__file__).resolve().parents[1] / "configs" / "faces_haar.yaml"
    config = with_sources(load_config(configs, ["sources.0.every=3"]), [" a.mp4 ", "rtsp://cam/s"])
    assert [(s.id, s.uri, s.every) for s in config.sources] == [
        ("cam0", "a.mp4", 3),
        ("cam1", "rtsp://cam/s", 3),
    ]
    with pytest.raises(ConfigError) as info:
        with_sources(config, ["synthetic://100000x100000?pwd=x"])
    assert str(info.value) == (
        "--source 'synthetic://100000x100000?pwd=***': synthetic 100000x100000 is more than max_pixels (40000000)"
    )
    with pytest.raises(ConfigError, match="at most 64 sources"):
        with_sources(config, ["a.mp4"] * 65)


@pytest.mark.parametrize(
    ("kind", "option", "value"),
    [
        ("render", "trail_length", 10**9),
        ("track.sort", "max_age", 10**9),
        ("track.iou", "max_age", 10**9),
        ("analytics.zone", "max_age", 10**9),
        ("filter.sketch", "blur_kernel", 10**6),
        ("sink.display", "wait_ms", 10**9),
        ("events", "max_age", 10**9),
    ],
)
def test_stage_options_that_become_buffers_or_waits_are_bounded(kind: str, option: str, value: int) -> None:
    from pipeline.config import config_from_dict

    stage = {"id": "s", "kind": kind, "with": {option: value}}
    if kind == "analytics.zone":
        stage["with"]["zones"] = [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}]
    with pytest.raises(ConfigError, match=rf"stages\[0\]\.with\.{option}: must be <="):
        config_from_dict({"version": 1, "stages": [stage]})
