"""The layers of the code, checked on its import graph (built with ``ast``, nothing is imported).

Rule for an edge: module A depends on module B when A's source has an ``import B``/``from B import x``
statement (or ``from B import C`` where ``B.C`` is a module: then both ``B`` and ``B.C``), relative
imports resolved. Two graphs:

* module level: the imports that run when A is imported (the module body, inside ``if``/``try``/
  ``with`` at top level); an ``if TYPE_CHECKING:`` block is no edge;
* all imports: the module-level ones plus those deferred into functions and methods. A deferred import
  still is a dependency (it only hides a cycle from the import machinery), so cycles are checked on
  this graph as well.

Asserted: no import cycle inside ``nbrisk_core`` and ``nbrisk_ui``; no Streamlit or Playwright in
``nbrisk_core``; nothing outside ``nbrisk_core.cli`` calls the command line's ``main``; ``report``
and ``prognosis`` use nothing from ``store`` or ``classifier`` (a case flows imaging -> classifier ->
prognosis as typed objects, the report renders a typed case that its caller loads from the store).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nbrisk_core", "nbrisk_ui")


def _module_files(root: Path = REPO_ROOT) -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.Module, *, deferred: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module: at module level, or (``deferred``) anywhere."""
    found, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            continue
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not deferred:
            continue
        else:
            stack.extend(ast.iter_child_nodes(node))
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: from the module's package, one level up per extra dot
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [source] + [f"{source}.{alias.name}" for alias in node.names]


@functools.lru_cache(maxsize=None)
def import_graph(*, deferred: bool, root: Path = REPO_ROOT) -> dict[str, set[str]]:
    """module -> the modules of ``PACKAGES`` it imports (see the module docstring for the rule)."""
    files = _module_files(root)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges = set()
        for node in _imports(_parse(path), deferred=deferred):
            for target in _targets(node, module, path.name == "__init__.py"):
                while target and target not in files:  # `from pkg.mod import name`: the module pkg.mod
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[frozenset[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(frozenset(component))
    return cycles


def _external_imports(module_prefix: str, name: str) -> list[str]:
    """``file:line`` of every import (any level) of package ``name`` under ``module_prefix``."""
    hits = []
    for module, path in _module_files().items():
        if module != module_prefix and not module.startswith(module_prefix + "."):
            continue
        for node in _imports(_parse(path), deferred=True):
            roots = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if not node.level else [])
            if any(r == name or r.startswith(name + ".") for r in roots):
                hits.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return hits


# ----------------------------------------------------------------------------- the graph itself
def test_the_graph_sees_module_level_and_deferred_imports(tmp_path):
    """The checker finds what it is meant to find (a checker that sees nothing passes everything)."""
    package = tmp_path / "nbrisk_core"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import a\n")
    (package / "sub" / "a.py").write_text("from nbrisk_core.sub.b import thing\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .a import other\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\n"
                                  "if TYPE_CHECKING:\n    from nbrisk_core.sub import a\n")
    (tmp_path / "nbrisk_ui").mkdir()
    top = import_graph(deferred=False, root=tmp_path)
    everything = import_graph(deferred=True, root=tmp_path)
    assert top["nbrisk_core.sub"] == {"nbrisk_core.sub.a"}
    assert top["nbrisk_core.sub.a"] == {"nbrisk_core.sub.b"}
    assert top["nbrisk_core.sub.b"] == set() and top["nbrisk_core.c"] == set()
    assert everything["nbrisk_core.sub.b"] == {"nbrisk_core.sub.a"}
    assert import_cycles(top) == []
    assert import_cycles(everything) == [frozenset({"nbrisk_core.sub.a", "nbrisk_core.sub.b"})]


def test_the_graph_covers_the_packages():
    graph = import_graph(deferred=True)
    assert len(graph) > 100
    assert "nbrisk_core.imaging.windowing" in graph["nbrisk_core.imaging.model_input"]
    assert "nbrisk_ui.state" in graph["nbrisk_ui.auth"]


# ----------------------------------------------------------------------------- cycles
def test_no_import_cycle_at_module_level():
    assert import_cycles(import_graph(deferred=False)) == []


def test_no_import_cycle_through_deferred_imports():
    cycles = [sorted(c) for c in import_cycles(import_graph(deferred=True))]
    assert cycles == [], f"import cycles (deferred imports count): {cycles}"


# ----------------------------------------------------------------------------- layers
@pytest.mark.parametrize("library", ["streamlit", "playwright"])
def test_the_core_library_imports_no_ui_or_browser_package(library):
    assert _external_imports("nbrisk_core", library) == []


def _calls_cli_main(path: Path) -> list[str]:
    tree = _parse(path)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "nbrisk_core.cli" \
                and any(alias.name == "main" for alias in node.names):
            hits.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
        elif isinstance(node, ast.Attribute) and node.attr == "main" \
                and ast.unparse(node.value).endswith("cli"):
            hits.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return hits


def test_nothing_outside_the_cli_goes_through_cli_main():
    """Library, dashboard and pages call typed functions; only ``nbrisk_core/cli/`` (and ``python -m
    nbrisk_core``) parse a command line."""
    allowed = {REPO_ROOT / "nbrisk_core" / "__main__.py"}
    sources = [p for package in (*PACKAGES, "pages") for p in (REPO_ROOT / package).rglob("*.py")]
    sources.append(REPO_ROOT / "streamlit_app.py")
    hits = [hit for path in sources
            if path not in allowed and "cli" not in path.relative_to(REPO_ROOT).parts[:2]
            for hit in _calls_cli_main(path)]
    assert hits == []
    assert _calls_cli_main(REPO_ROOT / "nbrisk_core" / "__main__.py")  # the check does see a call


def test_only_the_entry_point_imports_the_cli_package():
    graph = import_graph(deferred=True)
    def in_cli(module: str) -> bool:   # nbrisk_core.cli and its modules, not nbrisk_core.clinical
        return module == "nbrisk_core.cli" or module.startswith("nbrisk_core.cli.")

    importers = sorted(m for m, edges in graph.items()
                       if not in_cli(m) and m != "nbrisk_core.__main__" and any(in_cli(e) for e in edges))
    assert importers == []
    assert any(in_cli(e) for e in graph["nbrisk_core.__main__"])  # the check does see the entry point


@pytest.mark.parametrize("layer", ["nbrisk_core.report", "nbrisk_core.prognosis"])
def test_report_and_prognosis_use_neither_store_nor_classifier(layer):
    graph = import_graph(deferred=True)
    arrows = sorted(f"{m} -> {e}" for m, edges in graph.items() if m == layer or m.startswith(layer + ".")
                    for e in edges if e.startswith(("nbrisk_core.store", "nbrisk_core.classifier")))
    assert arrows == []
