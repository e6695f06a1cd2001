"""Fuzzing the pipeline loader: whatever the file holds, `load_config` either returns a config or
raises a ConfigError that names the file and says where (a YAML path or a line) - never another
exception, never a traceback.

The default suite runs 1,100 cases; `pytest -m fuzz` runs 20x as many (hypothesis keeps failing
cases in .hypothesis/ and replays them first).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import load_config
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIG_TEXTS = [p.read_text(encoding="utf-8") for p in sorted((REPO / "configs").glob("*.yaml"))]

# Cases per strategy in the default suite (1,100 in all, ~15 s here); `-m fuzz` runs 20x as many.
DEFAULT_EXAMPLES = {"mutated_config": 400, "random_text": 450, "pipeline_shaped": 250}
FUZZ_FACTOR = 20

# Pieces of YAML syntax and values that have broken loaders: anchors, tags, merge keys, odd
# scalars (dates that do not exist, ints over Python's digit limit, infinities), control bytes.
YAML_BITS = [
    ": ", "- ", "-", "[", "]", "{", "}", ",", "&a ", "*a", "&b ", "*b", "!!str ", "!!binary ", "!!set ",
    "!!omap ", "!!python/tuple ", "!x ", "<<: ", "? ", "|", ">-", "'", '"', "#", "\n", "  ", "    ",
    "\t", "%YAML 1.1\n", "---\n", "...\n", "@", "`", "~", "null", "true", "no", ".inf", "-.inf",
    ".nan", "1e400", "-1", "0", "0x1F", "0o17", "1_000", "2001-13-45", "2001-12-14t21:59:43.10-05:00",
    "9" * 5000, "\x00", "\x85", "\ufeff", "\u2028", "é", "\U0001f600", "id: ", "kind: ", "with: ",
    "uri: ", "stages:", "sources:", "links:", "threads: ", "workers: ", "batch: ", "capacity: ",
    "resize: ", "max_pixels: ", "after: ", "every: ", "[1000000, 1000000]", "detect.haar", "render",
    "sink.jsonl", "synthetic://99999x99999", "rtsp://u:p@h/?pwd=x",
]  # fmt: skip

WHOLE_FILE = ("the file is empty", "the top level must be a mapping")
LOCATED = re.compile(r"\bline \d+|^[A-Za-z_<][^\s:]*: ")


def assert_loads_or_config_error(path: Path) -> None:
    try:
        load_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        assert "Traceback" not in message, message
        head, *problems = message[len(str(path)) + 2 :].split("\n")
        if head == "invalid pipeline":
            assert problems, message
            for line in problems:  # one problem a line, each with its YAML path
                assert line.startswith("  ") and re.search(r": .+\(line \d+\)$", line), message
        else:
            assert not problems, message  # anything else is one line
            assert head.startswith(WHOLE_FILE) or LOCATED.search(head), message


yaml_piece = st.sampled_from(YAML_BITS) | st.text(string.printable, max_size=4) | st.text(max_size=3)


@st.composite
def mutated_config(draw: st.DrawFn) -> bytes:
    """A real pipeline file with a few splices of YAML syntax, odd values or raw bytes."""
    text = draw(st.sampled_from(CONFIG_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 30)))
        text = text[:start] + "".join(draw(st.lists(yaml_piece, max_size=5))) + text[end:]
    data = text.encode("utf-8")
    if draw(st.integers(0, 9)) == 0:  # now and then a byte that is not UTF-8
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at:]
    return data


random_text = st.lists(yaml_piece, max_size=40).map(lambda parts: "".join(parts).encode("utf-8")) | st.binary(
    max_size=200
)

scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["detect.haar", "render", "sink.jsonl", "a.mp4", "synthetic://64x48", "latest"])
)
value = st.recursive(  # small trees: generating big ones costs more than loading them
    scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
KEYS = ["id", "kind", "with", "uri", "threads", "workers", "batch", "after", "placement", "resize", "every"]


@st.composite
def pipeline_shaped(draw: st.DrawFn) -> bytes:
    """Well-formed YAML shaped like a pipeline, with random values where the options go."""
    entry = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), value, max_size=6)
    doc: dict[str, Any] = {
        "stages": draw(st.lists(entry, max_size=4)),
        "sources": draw(st.lists(entry, max_size=3)),
    }
    doc.update(
        draw(st.dictionaries(st.sampled_from(["links", "threads", "version", "x"]), value, max_size=2))
    )
    return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8")


STRATEGIES: dict[str, st.SearchStrategy[bytes]] = {
    "mutated_config": mutated_config(),
    "random_text": random_text,
    "pipeline_shaped": pipeline_shaped(),
}


def run_fuzz(strategy: st.SearchStrategy[bytes], examples: int, path: Path) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def check(data: bytes) -> None:
        path.write_bytes(data)
        assert_loads_or_config_error(path)

    check()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_loader_raises_only_located_config_errors(tmp_path: Path, name: str) -> None:
    run_fuzz(STRATEGIES[name], DEFAULT_EXAMPLES[name], tmp_path / "pipe.yaml")


@pytest.mark.fuzz
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_loader_fuzz_long(tmp_path: Path, name: str, request: pytest.FixtureRequest) -> None:
    if "fuzz" not in (request.config.option.markexpr or ""):
        pytest.skip("long fuzz run: select it with -m fuzz")
    run_fuzz(STRATEGIES[name], DEFAULT_EXAMPLES[name] * FUZZ_FACTOR, tmp_path / "pipe.yaml")


def test_the_checker_itself() -> None:
    """The property is only as good as its check: located messages pass, unlocated ones fail."""
    check: Callable[[str], bool] = lambda head: bool(head.startswith(WHOLE_FILE) or LOCATED.search(head))  # noqa: E731
    assert check("not valid YAML: found undefined alias 'a' (line 3, column 4)")
    assert check("stages[0].with: nested deeper than 64 levels (line 5)")
    assert check("the file is empty")
    assert not check("internal error: RecursionError: maximum recursion depth exceeded")
