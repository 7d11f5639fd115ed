"""The prognosis engine takes a feature table: it imports neither the classifier nor the store or the
report, and its modules import each other without cycles (issue 24)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbrisk_core

PROGNOSIS = Path(nbrisk_core.__file__).parent / "prognosis"
FORBIDDEN = ("nbrisk_core.classifier", "nbrisk_core.store", "nbrisk_core.report", "nbrisk_core.features",
             "streamlit")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _module(path: Path) -> str:
    parts = path.relative_to(PROGNOSIS.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_prognosis_imports_no_classifier_store_report_or_streamlit():
    offending = {_module(p): sorted(n for n in _imports(p) if n.startswith(FORBIDDEN))
                 for p in PROGNOSIS.rglob("*.py")}
    assert not {m: n for m, n in offending.items() if n}


def test_prognosis_modules_import_each_other_without_cycles():
    modules = {_module(p): p for p in PROGNOSIS.rglob("*.py")}
    graph = {m: {n for n in modules if n != m and any(i == n or i.startswith(n + ".") for i in _imports(p))
                 and not m.startswith(n + ".")}  # a package's modules may import their own package
             for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert "nbrisk_core.prognosis.pipeline" not in graph["nbrisk_core.prognosis.individual"]
