"""The import structure the design asks for: the engine never imports the stages, no module
reaches into another's private names, and no two modules import each other."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "stages", "models", "benchmarks")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every import, also those inside functions."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [alias.name for alias in node.names], node.lineno))
    return out


def test_the_engine_never_imports_stages() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for name, path in _modules().items()
        if name.split(".")[0] == "pipeline"
        for module, _, line in _imports(path)
        if module.split(".")[0] == "stages"
    ]
    assert not offenders, offenders


def test_no_module_imports_another_modules_private_names() -> None:
    modules = _modules()
    offenders = [
        f"{path.relative_to(REPO)}:{line} takes {n} from {module}"
        for path in modules.values()
        for module, names, line in _imports(path)
        if module in modules and modules[module] != path
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not offenders, offenders


def test_no_two_modules_import_each_other() -> None:
    modules = _modules()
    deps = {
        name: {m for m, names, _ in _imports(path) for m in [m, *(f"{m}.{n}" for n in names)] if m in modules}
        for name, path in modules.items()
    }
    pairs = sorted(
        f"{a} <-> {b}" for a, targets in deps.items() for b in targets if a < b and a in deps.get(b, set())
    )
    assert not pairs, pairs
