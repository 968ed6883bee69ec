"""No import cycles between the modules of a package.

A cycle means two modules cannot be read (or tested, or changed) one without the other: the
proxy's app factory and its handlers used to import each other for the app keys. Imports are
read with ``ast`` from the source (top level and inside functions, ``from . import x``,
``from .x import y``, ``import tokentail.x``); imports under ``if TYPE_CHECKING:`` are left
out, since they never run. Only edges inside one package count: ``tokentail.proxy`` importing
``tokentail.access`` is a dependency between packages, not a cycle.

The tests keep two rules of their own here: no test module imports another (what tests
share lives in ``tests/helpers``), and the tests mirror the tree (``tests/proxy/test_x.py``
tests ``proxy/x.py``).
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


# --- the tests' own layout --------------------------------------------------------------------

TESTS = ROOT / "tests"
# tests/<folder> -> the source folder its test files name modules of
SOURCES = {
    "": ROOT / "tokentail",
    "proxy": ROOT / "proxy",
    "collector": ROOT / "collector",
    "dashboard": ROOT / "dashboard",
}
# Test files that name no one module, and why.
NOT_ONE_MODULE = {
    "test_imports.py": "the tree's import graph and the tests' layout",
    "test_compose.py": "compose.yaml, the Dockerfile and .dockerignore",
    "test_kubernetes.py": "the manifests under deploy/kubernetes (kustomize base and overlay)",
    "test_grafana.py": "the Grafana dashboards and provisioning under grafana/",
    "test_otel_collector_config.py": "otel-collector.yaml",
    "proxy/test_cost.py": "end to end: cost through the feed, the API, spans and metrics",
    "proxy/test_sdk.py": "end to end: the real openai SDK through the proxy",
    "proxy/test_process.py": "end to end: the proxy as a real process (signals, RSS, open files)",
    "dashboard/test_pages.py": "sessions_page, runs_page and playground_page without a browser",
    "dashboard/test_browser.py": "end to end: the dashboard in headless Chromium",
    "proxy/test_content_safety.py": "end to end: untrusted content through every sink of the proxy",
    "test_prometheus_rules.py": "deploy/prometheus/rules.yml (recording rules and alerts)",
    "test_prometheus_rules_upstreams.py": "deploy/prometheus/rules-upstreams.yml",
}


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py") if "helpers" not in p.relative_to(TESTS).parts)


def imported_test_modules(path: Path) -> list[str]:
    """The ``test_*`` modules ``path`` imports (``from .test_x import``, ``import tests.test_x``, ...)."""
    found = []
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = "." * node.level + (node.module or "")
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        ours = [n for n in names if n.startswith(".") or n.split(".")[0] == "tests"]  # not aiohttp.test_utils
        found += [n for n in ours if any(part.startswith("test_") for part in n.split("."))]
    return sorted(set(found))


def test_no_test_module_imports_another():
    offenders = {str(p.relative_to(TESTS)): imported_test_modules(p) for p in _test_files()}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"share through tests/helpers instead: {offenders}"


def test_the_test_import_check_bites(tmp_path):
    cases = {
        "from .test_a import x\n": [".test_a", ".test_a.x"],
        "def f():\n    from tests.proxy.test_b import y\n": ["tests.proxy.test_b", "tests.proxy.test_b.y"],
        "import tests.test_c\n": ["tests.test_c"],
        "from . import test_d\n": ["..test_d"],
        "from tests.helpers import until\nfrom aiohttp.test_utils import TestServer\n": [],
    }
    for i, (source, expected) in enumerate(cases.items()):
        f = tmp_path / f"test_case{i}.py"
        f.write_text(source)
        assert imported_test_modules(f) == expected, source


def named_module(rel: Path) -> Path | None:
    """The source module (or package) ``tests/<folder>/test_<name>[_<aspect>].py`` names, if any:
    ``<name>.py``, ``_<name>.py`` or the package ``<name>/``, the longest ``<name>`` first."""
    folder = SOURCES.get(rel.parent.as_posix() if rel.parent != Path(".") else "")
    if folder is None:
        return None
    words = rel.stem.removeprefix("test_").split("_")
    for n in range(len(words), 0, -1):
        name = "_".join(words[:n])
        for candidate in (folder / f"{name}.py", folder / f"_{name}.py", folder / name / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def test_every_test_file_names_the_module_it_tests():
    unnamed = []
    for path in _test_files():
        rel = path.relative_to(TESTS)
        key = rel.as_posix()
        if key in NOT_ONE_MODULE or rel.name.startswith(("test_e2e_", "test_browser_")) or "_e2e" in rel.stem:
            continue
        if named_module(rel) is None:
            unnamed.append(key)
    assert not unnamed, (
        "name each test file after the module it tests (tests/proxy/test_x.py for proxy/x.py, "
        f"test_x_<aspect>.py for one aspect), or list it in NOT_ONE_MODULE with the reason: {unnamed}"
    )


def test_the_layout_check_maps_names_to_modules():
    assert named_module(Path("proxy/test_forward.py")) == ROOT / "proxy" / "forward.py"
    assert named_module(Path("proxy/test_redact_stream.py")) == ROOT / "proxy" / "_redact_stream.py"
    assert named_module(Path("proxy/test_live_http.py")) == ROOT / "proxy" / "live.py"  # an aspect of live
    assert named_module(Path("test_simulator.py")) == ROOT / "tokentail" / "simulator" / "__init__.py"
    assert named_module(Path("collector/test_nothing_here.py")) is None
    assert all((TESTS / k).is_file() for k in NOT_ONE_MODULE), "an exception names a file that is gone"
