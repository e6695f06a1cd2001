"""The README's first two commands are what a new user types: they must stay true.

The first installs no extras (the Haar job needs none); the second, the test command, is the very
line CI runs, so the two cannot drift apart.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The README's ```bash blocks, in order, each as one command line."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)]


def ci_lines() -> list[str]:
    text = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def pip_installs(command: str) -> list[list[str]]:
    """The arguments of every `pip install` in a shell line (`a && b && c`)."""
    found = []
    for part in command.split("&&"):
        words = shlex.split(part)
        if "pip" in [Path(w).name for w in words] and "install" in words:
            found.append(words[words.index("install") + 1 :])
    return found


def test_the_first_command_installs_no_extras_and_runs_the_main_job() -> None:
    first = readme_commands()[0]
    assert "\n" not in first, "the first command is one line a user can paste"
    installs = pip_installs(first)
    assert installs == [["-e", "."]], installs  # no [extras]: the Haar job runs without them
    assert first.startswith("python3 -m venv .venv && ")
    assert first.endswith("vigil run configs/faces_haar.yaml --output out/")


def test_ci_runs_the_readme_test_command_exactly() -> None:
    test_command = readme_commands()[1]
    assert "\n" not in test_command and "pytest" in test_command
    assert any("[" in arg for args in pip_installs(test_command) for arg in args), (
        "the test command installs the extras the tests need itself"
    )
    lines = ci_lines()
    assert test_command in lines, f"{test_command!r} is not a line of .ci/run"
    # CI starts from a clean clone: it makes the venv the README's first command makes, first.
    assert lines.index("python3 -m venv .venv") < lines.index(test_command)
