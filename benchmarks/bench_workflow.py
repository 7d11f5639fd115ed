"""Load benchmark of the dashboard workflow: ``python benchmarks/bench_workflow.py [--sessions 10] [--json]``.

One server (sign-in on, throwaway database), N headless Chromium sessions running the clinician's flow
at the same time (the harness of the browser tests, ``tests/e2e/harness.py``); prints p50/p95 per step,
the sessions' errors and retries, and checks that no saved case crossed sessions. Needs a source
checkout (the harness and ``streamlit_app.py``), Debian's Chromium and Playwright; it was
``nbrisk bench workflow`` before the harness left the library.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: the harness is imported from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from tests.e2e import harness  # noqa: E402
from tests.e2e.harness import (STEP_TIMEOUT_MS, Flow, browser_context, chromium_missing_reason,  # noqa: E402
                               clinician_flow, make_demo_zip, start_server, stop_server)


def add_arguments(parser) -> None:
    parser.add_argument("--sessions", type=int, default=10, help="concurrent browser sessions (default 10)")
    parser.add_argument("--screenshots", action="store_true", help="save screenshots of every step")
    parser.add_argument("--upload", choices=("zip", "files"), default="zip",
                        help="upload the demo study as one zip (default) or as its DICOM files")
    parser.add_argument("--step-timeout", type=float, default=None, metavar="S",
                        help="seconds one step may wait (default: 90 s times sessions per CPU core, at least 90 s: "
                             "N browsers on fewer cores are starved, and a timeout there measures the machine)")


def step_timeout_s(sessions: int, cores: int | None = None) -> float:
    """Default step timeout of the benchmark: 90 s scaled by the browser sessions per core.

    >>> step_timeout_s(1, cores=2), step_timeout_s(10, cores=2)
    (90.0, 450.0)
    """
    cores = cores or os.cpu_count() or 1
    return STEP_TIMEOUT_MS / 1000 * max(1.0, sessions / cores)


def _session_worker(base_url: str, index: int, username: str, password: str, demo_patient: str,
                    study_zip, screenshots: bool, step_timeout_ms: int = STEP_TIMEOUT_MS) -> dict:
    from playwright.sync_api import sync_playwright

    harness.STEP_TIMEOUT_MS = int(step_timeout_ms)  # this worker is its own (spawned) process: it stays here
    started = time.perf_counter()
    label = f"BENCH-{index:02d}"
    try:
        with sync_playwright() as pw, browser_context(pw) as context:
            flow = Flow(context.new_page(), base_url, name=username, screenshots=screenshots)
            outcome = clinician_flow(flow, username, password, label=label, demo_patient=demo_patient,
                                     study_zip=study_zip)
            outcome["error"] = None
    except Exception as error:  # noqa: BLE001 - a benchmark reports every session's failure
        timings = dict(flow.timings) if "flow" in locals() else {}
        outcome = {"error": f"step {len(timings)} ({list(timings)[-1] if timings else 'start'}): "
                            f"{type(error).__name__}: {str(error).splitlines()[0][:300]}",
                   "timings": {}, "case_uid": None,
                   "retries": dict(flow.retries) if "flow" in locals() else {}}
    outcome.update(index=index, username=username, label=label, wall_s=time.perf_counter() - started)
    return outcome


def run(args) -> dict:
    """Start one server, run ``--sessions`` browser sessions through the flow at once, report p95 per step."""
    import concurrent.futures
    import multiprocessing

    import numpy as np

    from nbrisk_core import config
    from nbrisk_core.store.db import make_engine

    reason = chromium_missing_reason()
    if reason:
        print(f"workflow benchmark skipped: {reason}")
        return {"skipped": reason}
    n = int(getattr(args, "sessions", 10))
    timeout_s = getattr(args, "step_timeout", None) or step_timeout_s(n)
    cohort = config.demo_cohort_dir()
    meta_path = cohort / "cohort.json"
    if not meta_path.exists():
        print(f"workflow benchmark skipped: no demo cohort at {cohort} (nbrisk demo build)")
        return {"skipped": "no demo cohort"}
    examples = json.loads(meta_path.read_text()).get("example_patients") or ["P0001"]
    accounts = [(f"bench{i:02d}", f"bench-password-{i:02d}", "clinician") for i in range(n)]
    server = start_server(accounts, data_dir=cohort)
    zips: dict = {}
    try:
        for pid in examples:
            if getattr(args, "upload", "zip") == "files":
                zips[pid] = sorted((cohort / "studies" / pid).rglob("*.dcm"))
            else:
                zips[pid] = make_demo_zip(cohort, pid, server.workdir / "studies")
        print(f"server {server.url}: {n} concurrent sessions, step timeout {timeout_s:.0f} s")
        started = time.perf_counter()
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=n, mp_context=context) as pool:
            futures = [pool.submit(_session_worker, server.url, i, accounts[i][0], accounts[i][1],
                                   examples[i % len(examples)], zips.get(examples[i % len(examples)]),
                                   bool(getattr(args, "screenshots", False)), int(timeout_s * 1000))
                       for i in range(n)]
            outcomes = [f.result() for f in futures]
        wall = time.perf_counter() - started
        engine = make_engine(server.database_url)
        try:
            isolation = _check_isolation(engine, outcomes)
            sign_in_audit = _audit_counts(engine)
        finally:
            engine.dispose()
    finally:
        stop_server(server)
    errors = [f"session {o['index']}: {o['error']}" for o in outcomes if o["error"]]
    steps: dict[str, list[float]] = {}
    for o in outcomes:
        for step, seconds in o["timings"].items():
            steps.setdefault(step, []).append(seconds)
    figures = {"sessions": n, "step_timeout_s": round(timeout_s, 1), "wall_s": round(wall, 2), "errors": errors,
               "isolation_problems": isolation,
               "retries": {f"session {o['index']}": o["retries"] for o in outcomes if o.get("retries")},
               "sign_in_audit": sign_in_audit,
               "steps": {k: {"n": len(v), "p50_s": round(float(np.percentile(v, 50)), 2),
                             "p95_s": round(float(np.percentile(v, 95)), 2), "max_s": round(max(v), 2)}
                         for k, v in steps.items()}}
    print(f"{n} sessions in {wall:.1f} s wall; {len(errors)} with errors; isolation problems: {len(isolation)}")
    for step, f in figures["steps"].items():
        print(f"  {step:<12} n={f['n']:<3} p50 {f['p50_s']:6.2f} s   p95 {f['p95_s']:6.2f} s   max {f['max_s']:6.2f} s")
    for o in outcomes:
        if o.get("retries"):
            print(f"  retried session {o['index']}: {o['retries']}; "
                  f"audit trail of {o['username']}: {sign_in_audit.get(o['username'], {})}")
    for line in errors + isolation:
        print(f"  PROBLEM {line}")
    return figures


def _check_isolation(engine, outcomes: list[dict]) -> list[str]:
    """Each session's saved case carries its own label and user; no case was saved twice or crossed."""
    from nbrisk_core.store import cases as store_cases
    from nbrisk_core.store.access import system

    problems = []
    for o in outcomes:
        uid = o.get("case_uid")
        if not uid:
            continue
        record = store_cases.load_case(engine, uid, system("bench"), record_open=False)
        expected = (o["label"], o["username"])
        if (record.label, record.created_by) != expected:
            problems.append(f"session {o['index']} saved {uid} as {record.label!r} by {record.created_by!r}, "
                            f"expected {expected}")
    uids = [o.get("case_uid") for o in outcomes if o.get("case_uid")]
    if len(set(uids)) != len(uids):
        problems.append("two sessions reported the same case id")
    return problems


def _audit_counts(engine) -> dict[str, dict[str, int]]:
    """Sign-in events per bench user from the audit trail: what the server saw, beside what the browsers
    did (one sign-in and one sign-out each, plus each reported retry)."""
    from nbrisk_core.store import audit

    return audit.count_events(engine, ("sign_in", "sign_in_failed", "sign_in_blocked", "sign_out"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_workflow.py", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.json:  # stdout carries the one JSON object and nothing else: the progress lines go to stderr
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):
            figures = run(args)
        print(json.dumps(figures, indent=2, default=float))
    else:
        figures = run(args)
    return 1 if figures.get("errors") or figures.get("isolation_problems") else 0


if __name__ == "__main__":
    sys.exit(main())
