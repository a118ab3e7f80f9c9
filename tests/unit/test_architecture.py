"""The layers of src/reusespec: no import circle, no pytest below the plugin, no private names across modules.

Run alone with ``python -m pytest tests/unit/test_architecture.py``; it reads the source with
``ast`` (imports inside functions and ``TYPE_CHECKING`` blocks count too), so it needs nothing
installed but pytest.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SOURCE / "reusespec"
# Modules allowed to import pytest: the plugin, and the command that runs pytest for calibration.
PYTEST_ALLOWED = ("reusespec.pytest_plugin", "reusespec.cli")
# Every module stays under ~500 lines.
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement of a module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, [alias.name for alias in node.names]))
    return found


def dependencies(name: str) -> set[str]:
    """The reusespec modules a module imports (``from a import b`` is ``a.b`` when that is a module)."""
    deps = set()
    for module, names in imports(name):
        targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES] or [module]
        deps.update(t for t in targets if t in MODULES and t != name)
    return deps


def circles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    return cycles


def import_cycles() -> list[list[str]]:
    return circles({name: sorted(dependencies(name)) for name in MODULES})


def test_the_checker_sees_the_package() -> None:
    assert {"reusespec.pytest_plugin", "reusespec.gate.rules", "reusespec.stats"} <= set(MODULES)
    assert "reusespec.gate.rules" in dependencies("reusespec.gate.decision")


def test_no_import_circle_in_src() -> None:
    assert import_cycles() == []


def test_a_circle_would_be_found() -> None:
    assert circles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert circles({"a": ["b"], "b": [], "c": ["a", "b"]}) == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith(PYTEST_ALLOWED)))
def test_the_core_and_the_gate_engine_import_no_pytest(name: str) -> None:
    imported = {module.split(".")[0] for module, _ in imports(name)}
    assert not imported & {"pytest", "_pytest", "xdist"}, f"{name} imports pytest"


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [
        f"{name}: from {module} import {n}"
        for name in MODULES
        for module, names in imports(name)
        if module.startswith("reusespec") and module != name
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert private == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_short(name: str) -> None:
    lines = MODULES[name].read_text().count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it"


def test_no_pytester_module_shares_a_name_with_a_test_module() -> None:
    # Test modules are imported by basename (no __init__.py): a pytester file named like one that the
    # outer run already imported fails to collect, but only when that module happened to run first in
    # the same worker, which is how a test passes in one order and fails in a fresh clone.
    tests = Path(__file__).resolve().parents[1]
    modules = {path.stem for path in tests.rglob("test_*.py")}
    clashes = [
        f"{path.relative_to(tests)}: makepyfile({match.group(1)}=...)"
        for path in tests.rglob("*.py")
        for match in re.finditer(r"makepyfile\(\s*(\w+)\s*=", path.read_text())
        if match.group(1) in modules
    ]
    assert not clashes, "rename these pytester modules: " + "; ".join(clashes)
