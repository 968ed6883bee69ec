"""No import cycles between the modules of a package.

A cycle means two modules cannot be read (or tested, or changed) one without the other: the
proxy's app factory and its handlers used to import each other for the app keys. Imports are
read with ``ast`` from the source (top level and inside functions, ``from . import x``,
``from .x import y``, ``import tokentail.x``); imports under ``if TYPE_CHECKING:`` are left
out, since they never run. Only edges inside one package count: ``tokentail.proxy`` importing
``tokentail.access`` is a dependency between packages, not a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> its folder (the installed layout maps the three process folders into tokentail)
PACKAGES = {
    "tokentail": ROOT / "tokentail",
    "tokentail.simulator": ROOT / "tokentail" / "simulator",
    "tokentail.proxy": ROOT / "proxy",
    "tokentail.collector": ROOT / "collector",
    "tokentail.dashboard": ROOT / "dashboard",
}


def modules(package: str) -> dict[str, Path]:
    """Module name -> file, the package's own ``__init__`` named as the package."""
    folder = PACKAGES[package]
    out = {}
    for path in sorted(folder.glob("*.py")):
        out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)  # the else branch does run
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def imports(package: str, module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``package`` that ``module`` imports."""
    is_init = path.stem == "__init__"
    here = module if is_init else module.rsplit(".", 1)[0]  # the package `.` refers to
    out: set[str] = set()

    def add(name: str) -> None:
        # `tokentail.proxy.app.create_app` -> the longest known module prefix
        if any(name.startswith(p + ".") for p in PACKAGES if p != package and p.startswith(package + ".")):
            return  # a subpackage of this one (tokentail.proxy from tokentail): another graph
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            candidate = ".".join(parts[:i])
            if candidate in known:
                out.add(candidate)
                return

    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
            continue
        if node.level:
            base_parts = here.split(".")
            if node.level > 1:
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts)
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        for alias in node.names:
            add(f"{target}.{alias.name}")  # `from . import x`: the module x, else the package
    out.discard(module)
    return {m for m in out if m.startswith(package + ".") or m == package}


def graph(package: str) -> dict[str, set[str]]:
    mods = modules(package)
    known = set(mods)
    return {m: imports(package, m, p, known) for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(g):
        if v not in index:
            visit(v)
    return [_a_cycle(g, set(comp)) for comp in comps]


def _a_cycle(g: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, as a readable path."""
    start = min(comp)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(g[v] & comp):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)  # unreachable for a strongly connected component


@pytest.mark.parametrize("package", list(PACKAGES))
def test_no_import_cycles(package):
    found = cycles(graph(package))
    assert not found, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in found)


def test_the_checker_sees_cycles_and_their_kinds(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import x\n")  # function-level
    (pkg / "c.py").write_text("import tokentail.fake.a\n")  # absolute
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import y\n")
    (pkg / "e.py").write_text("from .d import z\n")
    monkeypatch.setitem(PACKAGES, "tokentail.fake", pkg)
    g = graph("tokentail.fake")
    assert g["tokentail.fake.a"] == {"tokentail.fake.b"}
    assert g["tokentail.fake.b"] == {"tokentail.fake.c"}
    assert g["tokentail.fake.c"] == {"tokentail.fake.a"}
    assert g["tokentail.fake.d"] == set()  # TYPE_CHECKING only
    assert cycles(g) == [["tokentail.fake.a", "tokentail.fake.b", "tokentail.fake.c", "tokentail.fake.a"]]


def test_the_proxy_state_module_is_a_leaf_below_the_app_and_its_handlers():
    g = graph("tokentail.proxy")
    assert not g["tokentail.proxy.state"] & {"tokentail.proxy.app", "tokentail.proxy.api", "tokentail.proxy.forward"}
    assert "tokentail.proxy.app" not in g["tokentail.proxy.api"] | g["tokentail.proxy.forward"]
