"""Benchmarks behind ``nbrisk bench TARGET``: each module ``nbrisk_core.bench.<target>`` has
``add_arguments(parser)`` (optional) and ``run(args) -> dict``: it measures in one run, prints
readable lines as it goes and returns the figures (printed as JSON with ``--json``).
Benchmarks print ratios and measured figures; they are never timed asserts in the test suite."""

#: target -> module name in this package
BENCH_TARGETS: dict[str, str] = {
    "demo": "demo",
    "imaging": "imaging",
    "classifier": "classifier",
    "prognosis": "prognosis",
    "segmentation": "segmentation",
    "score": "score",
    "ddp": "ddp",
}

#: targets that left the library -> where they are now (``nbrisk bench TARGET`` says so, exit 2)
MOVED_TARGETS: dict[str, str] = {
    "workflow": "the browser load benchmark needs a source checkout (its Playwright harness lives in "
                "tests/e2e/): run `python benchmarks/bench_workflow.py [--sessions 10] [--json]`",
}
