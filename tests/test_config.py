"""Pipeline files: every mistake is reported with its YAML path and line; --set overrides; `vigil validate`.

Each bad config is written to a file (so line numbers are real) and loaded the way the CLI loads it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
FACES_HAAR = REPO / "configs" / "faces_haar.yaml"


def write(tmp_path: Path, text: str, name: str = "pipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


# (case id, file text, fragments the message must contain). Line numbers count from the first line.
BAD_CONFIGS = [
    (
        "scale_factor_not_above_one",
        """
        version: 1
        sources:
          - uri: a.mp4
        stages:
          - id: faces
            kind: detect.haar
            with:
              scale_factor: 0.9
        """,
        ["stages[0].with.scale_factor: must be > 1 (line 8)"],
    ),
    (
        "unknown_option_lists_known_ones",
        """
        stages:
          - id: faces
            kind: detect.haar
            with:
              min_neighbors: 4
              scale: 2
        """,
        [
            "stages[0].with.scale: unknown option (known: ",
            "scale_factor",
            "min_neighbors",
            "cascade",
            ") (line 6)",
        ],
    ),
    (
        "unknown_kind_suggests_closest",
        """
        stages:
          - id: faces
            kind: detect.haar
          - id: more
            kind: detect.har
        """,
        ["stages[1].kind: unknown stage kind 'detect.har'; did you mean detect.haar", "(line 5)"],
    ),
    (
        "duplicate_stage_id",
        """
        stages:
          - id: faces
            kind: detect.haar
          - id: faces
            kind: render
        """,
        ["stages[1].id: duplicate stage id 'faces' (line 4)"],
    ),
    (
        "after_names_a_later_stage",
        """
        stages:
          - id: faces
            kind: detect.haar
            after: draw
          - id: draw
            kind: render
        """,
        ["stages[0].after: 'draw' is a later stage; `after` must name an earlier stage (line 4)"],
    ),
    (
        "after_names_an_unknown_stage",
        """
        stages:
          - id: faces
            kind: detect.haar
          - id: draw
            kind: render
            after: nowhere
        """,
        ["stages[1].after: 'nowhere' is no stage; `after` must name an earlier stage (line 6)"],
    ),
    (
        "workers_on_render",
        """
        stages:
          - id: draw
            kind: render
            workers: 2
        """,
        ["stages[0].workers: render keeps state across frames; workers must be 1 (line 4)"],
    ),
    (
        "workers_on_a_sink",
        """
        stages:
          - id: faces
            kind: detect.haar
            workers: 2
          - id: out
            kind: sink.jsonl
            workers: 3
        """,
        ["stages[1].workers: sink.jsonl keeps state across frames; workers must be 1 (line 7)"],
    ),
    (
        "workers_not_a_number",
        """
        stages:
          - id: faces
            kind: detect.haar
            workers: two
        """,
        ["stages[0].workers: input should be a valid integer", "(line 4)"],
    ),
    (
        "bad_link_policy",
        """
        stages:
          - id: faces
            kind: detect.haar
        links:
          capacity: 8
          policy: newest
        """,
        ["links.policy: must be one of 'auto', 'lossless' or 'latest' (line 6)"],
    ),
    (
        "stages_missing",
        """
        version: 1
        sources:
          - uri: a.mp4
        """,
        ["stages: is required"],
    ),
    (
        "stages_empty",
        """
        version: 1
        stages: []
        """,
        ["stages: needs at least 1 item(s) (line 2)"],
    ),
    (
        "source_every_zero",
        """
        sources:
          - id: door
            uri: a.mp4
            every: 0
        stages:
          - id: faces
            kind: detect.haar
        """,
        ["sources[0].every: must be >= 1 (line 4)"],
    ),
    (
        "source_resize_zero_width",
        """
        sources:
          - uri: a.mp4
            resize: [0, 10]
        stages:
          - id: faces
            kind: detect.haar
        """,
        ["sources[0].resize: must be [width, height] with both > 0 (line 3)"],
    ),
    (
        "source_without_uri",
        """
        sources:
          - id: door
        stages:
          - id: faces
            kind: detect.haar
        """,
        ["sources[0].uri: is required (line 2)"],
    ),
    (
        "bad_placement",
        """
        stages:
          - id: faces
            kind: detect.haar
            placement: gpu
        """,
        ["stages[0].placement: must be one of 'thread' or 'process' (line 4)"],
    ),
    (
        "two_problems_both_reported",
        """
        stages:
          - id: faces
            kind: detect.haar
            with:
              scale_factor: 1.0
              min_neighbors: -1
        """,
        [
            "stages[0].with.scale_factor: must be > 1 (line 5)",
            "stages[0].with.min_neighbors: must be >= 0 (line 6)",
        ],
    ),
]


@pytest.mark.parametrize(("text", "fragments"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_path_and_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write(tmp_path, text)
    message = problems(path)
    assert message.startswith(f"{path}: invalid pipeline"), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert "Traceback" not in message and "pydantic" not in message.lower()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "stages:\n  - id: a\n    kind: [detect.haar\n",
            "not valid YAML: expected ',' or ']', but got '<stream end>' (line 4, column 1)",
        ),
        (
            "stages:\n  - id: a\n   kind: x\n",
            "not valid YAML: expected <block end>, but found '<block mapping start>' (line 3, column 4)",
        ),
        (
            "stages:\n\t- id: a\n",
            "not valid YAML: found character '\\t' that cannot start any token (line 2, column 1)",
        ),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- id: a\n  kind: render\n", "the top level must be a mapping with version, sources, stages"),
    ],
    ids=["unclosed_flow_list", "bad_indent", "tab", "empty", "only_comment", "top_level_list"],
)
def test_unreadable_file_is_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "pipe.yaml"
    path.write_text(text, encoding="utf-8")
    assert problems(path) == f"{path}: {expected}"


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    """YAML itself keeps the last of two equal keys; a pipeline that says `kind` twice is a mistake
    that must be reported, not silently half-applied."""
    path = write(
        tmp_path,
        """
        stages:
          - id: faces
            kind: detect.haar
            kind: render
        """,
    )
    message = problems(path)
    assert "duplicate" in message and "kind" in message and "line 4" in message, message


def test_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: no such pipeline file"


def test_empty_with_block_means_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        stages:
          - id: faces
            kind: detect.haar
            with:
        """,
    )
    assert load_config(path).stages[0].options.scale_factor == 1.1


# ------------------------------------------------------------------------------------ --set


def test_set_by_stage_id() -> None:
    config = load_config(FACES_HAAR, ["stages.faces.with.min_neighbors=6"])
    assert config.stage("faces").options.min_neighbors == 6
    assert config.stage("faces").options.scale_factor == 1.1  # the rest of the block is kept


def test_set_by_index_and_source_by_id() -> None:
    config = load_config(
        FACES_HAAR, ["stages.0.with.min_neighbors=7", "sources.cam0.every=3", "links.policy=latest"]
    )
    assert config.stages[0].options.min_neighbors == 7
    assert config.sources[0].every == 3
    assert config.links.policy == "latest"


def test_set_value_is_yaml() -> None:
    config = load_config(
        FACES_HAAR, ["stages.faces.with.min_size=[40, 40]", "stages.faces.with.equalize=true"]
    )
    assert config.stage("faces").options.min_size == (40, 40)
    assert config.stage("faces").options.equalize is True


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "stages.nope.with.min_neighbors=7",
            "--set 'stages.nope.with.min_neighbors=7': no entry 'nope' in stages (ids: ['faces', 'draw', 'video', 'results'])",
        ),
        ("stages.9.kind=render", "--set 'stages.9.kind=render': no entry '9' in stages"),
        ("stages.faces.with.min_neighbors", "--set 'stages.faces.with.min_neighbors': expected PATH=VALUE"),
        (
            "stages.faces.with.min_neighbors=[1",
            "--set 'stages.faces.with.min_neighbors=[1': value is not valid YAML",
        ),
    ],
    ids=["unknown_stage", "index_out_of_range", "no_equals", "bad_yaml_value"],
)
def test_set_bad_path_is_a_clear_error(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(FACES_HAAR, [override])
    assert str(info.value).startswith(expected), str(info.value)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("stages.faces.with.min_neighbors=-1", "stages[0].with.min_neighbors: must be >= 0"),
        ("stages.faces.with.scale_factor=0.5", "stages[0].with.scale_factor: must be > 1"),
        ("stages.draw.workers=2", "stages[1].workers: render keeps state across frames; workers must be 1"),
        ("stages.faces.workers=two", "stages[0].workers: input should be a valid integer"),
        ("sources.0.every=0", "sources[0].every: must be >= 1"),
        ("stages.faces.bogus=1", "stages[0].bogus: unknown option"),
    ],
)
def test_set_value_failing_validation_names_the_path(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(FACES_HAAR, [override])
    assert expected in str(info.value), str(info.value)


def test_set_value_failing_validation_is_not_blamed_on_a_file_line() -> None:
    """The file says `min_neighbors: 5` on line 11; the bad value came from --set, and the message
    must not send the user to a line of the file that holds a good value."""
    with pytest.raises(ConfigError) as info:
        load_config(FACES_HAAR, ["stages.faces.with.min_neighbors=-1"])
    message = str(info.value)
    assert "stages[0].with.min_neighbors: must be >= 0" in message
    assert "(line 11)" not in message, message
    assert "--set" in message, message


# ------------------------------------------------------------------------------ vigil validate


def test_validate_ok_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(FACES_HAAR)]) == 0
    out = capsys.readouterr().out
    assert "ok (1 source(s), 4 stage(s): faces -> draw -> video -> results)" in out


def test_validate_bad_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        """
        stages:
          - id: faces
            kind: detect.har
        """,
    )
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert "error:" in captured.err and "stages[0].kind: unknown stage kind 'detect.har'" in captured.err
    assert "did you mean detect.haar" in captured.err and "(line 3)" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_validate_bad_set_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(FACES_HAAR), "--set", "stages.nope.with.x=1"]) == 2
    assert "no entry 'nope' in stages" in capsys.readouterr().err


def test_validate_missing_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: no such pipeline file" in capsys.readouterr().err
