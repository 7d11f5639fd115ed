"""The ``>>>`` examples in the docstrings are run, so that they stay true.

Every module of ``nbrisk_core`` and ``nbrisk_ui`` whose source holds ``>>>`` is found here (a new
example runs without being listed) and run with :mod:`doctest` (``ELLIPSIS``, ``NORMALIZE_WHITESPACE``);
examples marked ``# doctest: +SKIP`` (they need a database or a server) are not run. The benchmark
scripts' examples run too (``benchmarks/bench_workflow.py``).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules_with_examples() -> list[str]:
    names = []
    for package in ("nbrisk_core", "nbrisk_ui"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if ">>>" in path.read_text(encoding="utf-8"):
                parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def _run(module) -> doctest.TestResults:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=FLAGS)
    for test in finder.find(module, module.__name__):
        runner.run(test)
    return runner.summarize(verbose=False)


def test_the_examples_are_found():
    assert len(MODULES) >= 15 and "nbrisk_core.imaging.windowing" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = _run(module)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see above)"


def test_benchmark_script_examples():
    path = REPO_ROOT / "benchmarks" / "bench_workflow.py"
    spec = importlib.util.spec_from_file_location("bench_workflow", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = _run(module)
    assert result.attempted > 0 and result.failed == 0
