"""The package's layers, checked over the source: each module imports only modules of its own or a lower layer
(imports inside functions included), and no two modules import each other, directly or round a circle.

The layers, bottom first, as solver/__init__.py draws them. A new module belongs in one; a test fails on an
upward import, so the dependency graph a newcomer reads from the tree stays the real one.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = [
    ("solver", "solver.errors", "solver.safety", "solver.args", "solver.comm", "solver.machine"),
    ("solver.models",),
    ("solver.core",),
    ("solver.parallel", "solver.storage"),
    ("solver.run",),
    ("solver.cli", "solver.ensemble", "solver.pool", "solver.info"),
    ("solver.bench",),
    ("solver.__main__", "analysis"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    """The layer of a module: that of the longest prefix named in LAYERS."""
    best = None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (index, name)
    assert best is not None, f"{module} is in no layer: add it to LAYERS in tests/test_layers.py"
    return best[0]


def imports(path: Path) -> set[str]:
    """The project modules a file imports, anywhere in it (``from . import x`` resolved to the module x)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in ("solver", "analysis"))
    return found


def project_modules() -> dict[str, Path]:
    files = [*REPO.glob("solver/**/*.py"), *REPO.glob("analysis/*.py")]
    return {module_name(p): p for p in files if "__pycache__" not in p.parts}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported name lives in (``solver.core.config.load`` -> ``solver.core.config``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, leaving out its own packages (``from . import x`` in a
    package's module touches the package's ``__init__``, which Python has already begun importing)."""
    modules = project_modules()
    edges = {}
    for name, path in modules.items():
        targets = {resolve(n, modules) for n in imports(path)}
        edges[name] = {t for t in targets if t and t != name and not name.startswith(t + ".")}
    return edges


def test_every_module_imports_only_its_own_or_lower_layers():
    upward = [f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})"
              for source, targets in graph().items() for target in targets if layer(target) > layer(source)]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_circles():
    edges = graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node, path):
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_mpi4py_is_imported_in_one_place():
    users = sorted(name for name, path in project_modules().items()
                   if any(n == "mpi4py" or n.startswith("mpi4py.")
                          for n in _third_party(path)))
    assert users == ["solver.comm", "solver.parallel.mpilib"], users


def _third_party(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("upward", ["from solver.cli import main", "from ..run import run"])
def test_an_upward_import_fails_the_check(tmp_path, monkeypatch, upward):
    """The check itself can fail: a core module importing the command line or the run loop is caught."""
    fake = REPO / "solver" / "core" / "grid.py"
    text = fake.read_text() + f"\n\ndef _upward():\n    {upward}\n"
    original = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: text if self == fake else original(self, *a, **k))
    with pytest.raises(AssertionError, match="solver.core.grid"):
        test_every_module_imports_only_its_own_or_lower_layers()
