"""Reading a pipeline file's YAML without trusting it: size, encoding, nesting and alias expansion
are bounded before anything walks the document, and every refusal is one line with a YAML path
and line.

A pipeline file is a few KB of plain mappings and lists. Hostile or broken input (an alias bomb,
thousands of nested brackets, a Latin-1 file, a value PyYAML cannot construct) becomes a
`ConfigError`, never a RecursionError, MemoryError or UnicodeDecodeError.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError

Path_ = tuple[str | int, ...]

MAX_FILE_BYTES = 1_000_000  # real pipeline files are a few KB
MAX_DEPTH = 64  # nesting levels, counting what aliases expand to
MAX_VALUES = 50_000  # YAML values in the document once every alias is expanded


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.<>-]+")


def format_path(path: Sequence[Any]) -> str:
    """`("stages", 2, "with", "threshold")` -> `stages[2].with.threshold`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(str(part)):  # a key with spaces or newlines stays one token
            out += f"[{str(part)!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Refused(yaml.YAMLError):
    """Well-formed YAML that a pipeline file must not contain (too deep, too large once expanded)."""

    def __init__(self, path: Path_, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.path, self.message, self.mark = path, message, mark


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that bounds nesting and alias expansion while composing, refuses a key given
    twice in one mapping (PyYAML keeps the last one) and turns any construction failure (a bad date,
    a 5000-digit integer, an unhashable key) into a YAML error with its position."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str | int] = []
        self._nesting = 0
        # node -> (values, depth) it stands for once expanded; absent while still being composed
        self._measure: dict[yaml.Node, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        part: str | int | None = index if isinstance(index, int) else None
        if isinstance(index, yaml.ScalarNode):
            part = index.value
        if part is not None:
            self._path.append(part)
        try:
            return self._compose_measured(parent, index)
        finally:
            if part is not None:
                self._path.pop()

    def _compose_measured(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None and target not in self._measure:
                # a cycle: every walk over the document would never end
                raise _Refused(tuple(self._path), f"alias *{event.anchor} refers to itself", event.start_mark)
            return super().compose_node(parent, index)
        self._nesting += 1
        try:
            if self._nesting > MAX_DEPTH:
                raise _Refused(tuple(self._path), f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._nesting -= 1
        self._measure_node(node)
        return node

    def _measure_node(self, node: yaml.Node) -> None:
        # Children are complete (aliases point at finished nodes), so this is one sum per node:
        # the expansion is bounded without ever walking it.
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        values = 1 + sum(self._measure[c][0] for c in children)
        depth = 1 + max((self._measure[c][1] for c in children), default=0)
        if values > MAX_VALUES:
            raise _Refused(
                tuple(self._path),
                f"expands to more than {MAX_VALUES} values (YAML aliases repeat what they name)",
                node.start_mark,
            )
        if depth > MAX_DEPTH:
            raise _Refused(
                tuple(self._path),
                f"nested deeper than {MAX_DEPTH} levels once aliases are expanded",
                node.start_mark,
            )
        self._measure[node] = (values, depth)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. `2001-13-45`, ints over 4300 digits
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value ({exc})", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!set ~`: a mapping tag on a scalar
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping for {node.tag}", node.start_mark
            )
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: merged keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain value, not a list or mapping", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _line_map(node: yaml.Node, path: Path_ = (), lines: dict[Path_, int] | None = None) -> dict[Path_, int]:
    """YAML path -> 1-based line of its value (recursion and size are bounded by the loader)."""
    lines = {} if lines is None else lines
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _line_map(value, (*path, key.value if isinstance(key, yaml.ScalarNode) else "?"), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _line_map(value, (*path, i), lines)
    return lines


def _yaml_error_line(exc: yaml.YAMLError, text: str) -> str:
    """One line for any PyYAML error: the problem and where it is."""
    if isinstance(exc, _Refused):
        where = f" (line {exc.mark.line + 1})" if exc.mark else ""
        shown = format_path(exc.path[:8]) + ("..." if len(exc.path) > 8 else "")  # 64 levels say nothing
        return f"{shown or '<top>'}: {exc.message}{where}"
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        return f"not valid YAML: character #x{char:04x} is not allowed (line {line}, column {column})"
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"not valid YAML: {' '.join(problem.split())}{where}"


def parse_yaml(text: str, name: str = "<config>") -> tuple[dict[str, Any], dict[Path_, int]]:
    """Parse a pipeline document: (the mapping, YAML path -> line). Raises ConfigError."""
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            raw = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: {_yaml_error_line(exc, text)}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a PyYAML constructor gap (the fuzz test looks)
        raise ConfigError(f"{name}: not valid YAML: cannot read a value ({exc})") from None
    if raw is None:
        raise ConfigError(f"{name}: the file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: the top level must be a mapping with version, sources, stages")
    return raw, _line_map(node)


def load_value(text: str) -> Any:
    """One YAML value (a `--set` override) read with the same limits; ValueError says what is wrong."""
    try:
        loader = _StrictLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ValueError(_yaml_error_line(exc, text).removeprefix("not valid YAML: ")) from None


def read_text(path: Path) -> str:
    """The file as text: at most MAX_FILE_BYTES, UTF-8 (the bad byte's line is named otherwise)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the pipeline file ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes; a pipeline file is a few KB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, column {column} "
            "(save the file as UTF-8)"
        ) from None
