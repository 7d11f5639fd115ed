"""Concurrency benchmark of the dashboard workflow: `python benchmarks/bench_workflow.py [--sessions 10]`.

Thin wrapper over ``nbrisk bench workflow`` (nbrisk_core/bench/workflow.py): one server, N
headless Chromium sessions running the clinician's flow at the same time; prints p50/p95 per step.
"""

from __future__ import annotations

import sys

from nbrisk_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "workflow", *sys.argv[1:]]))
