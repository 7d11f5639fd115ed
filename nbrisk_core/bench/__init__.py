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
    "workflow": "workflow",
    "segmentation": "segmentation",
}
