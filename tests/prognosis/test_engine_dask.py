"""The grid on a real Dask cluster: a scheduler and two workers started here on 127.0.0.1.

The dask backend must give the local backend's rows (same seeds, same fits), to 1e-12.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sksurv.util import Surv

pytest.importorskip("distributed")

from tests.e2e.harness import free_port  # noqa: E402
from nbrisk_core.errors import InputError  # noqa: E402
from nbrisk_core.prognosis import grid  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
#: every column of a combination row except its wall time
ROW_COLUMNS = ["combination", "selector", "predictor", "status", "reason", "n_features", "features"]
SCORES = ["c_index_train", "c_index_test", "c_index_mean"]
#: a few combinations of each kind (selector alone, selector + predictor, deduplicated subsets)
PAIRS = [(None, "RSF"), ("RSF", "Ridge"), ("LASSO", "GBM"), (None, "LASSO"), ("StepCox[forward]", "RSF"),
         (None, "CoxBoost"), ("CoxBoost", "Enet[alpha=0.5]"), (None, "SuperPC"), (None, "survival-SVM")]


def _stop(processes) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """``dask scheduler`` + two ``dask worker --nthreads 1`` on loopback; yields the address; stops them."""
    from distributed import Client

    workdir = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    paths = (str(REPO), os.environ.get("PYTHONPATH"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    cli = [sys.executable, "-m"]
    processes = []
    logs = []
    try:
        log = open(workdir / "scheduler.log", "wb")
        logs.append(log)
        processes.append(subprocess.Popen(
            [*cli, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--dashboard-address", "127.0.0.1:0", "--no-show"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        for k in range(2):
            log = open(workdir / f"worker{k}.log", "wb")
            logs.append(log)
            processes.append(subprocess.Popen(
                [*cli, "distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(workdir / f"w{k}"),
                 "--name", f"test-worker-{k}"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 90
        client = None
        while client is None:
            try:
                client = Client(address, timeout=5)
            except (OSError, TimeoutError):
                if time.monotonic() > deadline or processes[0].poll() is not None:
                    raise RuntimeError("dask scheduler did not start: "
                                       + (workdir / "scheduler.log").read_text(errors="replace")[-2000:])
                time.sleep(0.5)
        try:
            client.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
            assert len(client.scheduler_info()["workers"]) == 2
        finally:
            client.close()
        yield address
    finally:
        _stop(processes[::-1])
        for log in logs:
            log.close()


def _data(n=110, p=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    lp = X[:, 0] - 0.8 * X[:, 1]
    t = np.round(rng.exponential(np.exp(-lp)) * 800) + 1
    censor = rng.uniform(200, 2500, n)
    y = Surv.from_arrays(t <= censor, np.minimum(t, censor))
    return X[:80], y[:80], X[80:], y[80:]


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a[ROW_COLUMNS].reset_index(drop=True),
                                  b[ROW_COLUMNS].reset_index(drop=True))
    np.testing.assert_allclose(a[SCORES].to_numpy(float), b[SCORES].to_numpy(float), rtol=0, atol=1e-12,
                               equal_nan=True)


@pytest.fixture(scope="module")
def local_table():
    X, y, Xt, yt = _data()
    return grid.run_grid(X, y, Xt, yt, list("abcd"), pairs=PAIRS, profile="test", backend="sequential",
                         seed=3)


def test_grid_on_a_real_cluster_gives_the_local_rows(dask_cluster, local_table):
    X, y, Xt, yt = _data()
    table = grid.run_grid(X, y, Xt, yt, list("abcd"), pairs=PAIRS, profile="test", backend="dask",
                          scheduler=dask_cluster, seed=3)
    assert (local_table["status"] == "fitted").sum() >= 6
    _same_rows(table, local_table)
    # a different seed changes the forests: the comparison above can tell runs apart
    other = grid.run_grid(X, y, Xt, yt, list("abcd"), pairs=[(None, "RSF")], profile="test", backend="dask",
                          scheduler=dask_cluster, seed=4)
    assert other.loc[0, "c_index_train"] != local_table.loc[0, "c_index_train"]


def test_grid_on_a_local_cluster_without_scheduler(local_table, monkeypatch):
    # the LocalCluster's workers are spawned processes, which re-run the parent's __main__ file: after an
    # AppTest in the same pytest process that is a page script (AppTest runs pages as __main__), so give
    # the spawn a bare __main__, as the nbrisk command line has
    import sys
    import types

    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    X, y, Xt, yt = _data()
    table = grid.run_grid(X, y, Xt, yt, list("abcd"), pairs=PAIRS, profile="test", backend="dask", n_jobs=1,
                          seed=3)
    _same_rows(table, local_table)


def test_unreachable_scheduler_and_bad_address_are_input_errors(monkeypatch):
    X, y, Xt, yt = _data()
    monkeypatch.setattr(grid, "DASK_CONNECT_TIMEOUT_S", 2)
    with pytest.raises(InputError, match="expected an address like tcp://HOST:PORT"):
        grid.run_grid(X, y, Xt, yt, list("abcd"), pairs=[(None, "Ridge")], backend="dask",
                      scheduler="localhost")
    with pytest.raises(InputError, match=r"tcp://127\.0\.0\.1:\d+: no Dask scheduler answered"):
        grid.run_grid(X, y, Xt, yt, list("abcd"), pairs=[(None, "Ridge")], backend="dask",
                      scheduler=f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(InputError, match="only used with --backend dask"):
        grid.run_grid(X, y, Xt, yt, list("abcd"), pairs=[(None, "Ridge")], backend="loky",
                      scheduler="tcp://127.0.0.1:1")


def test_benchmark_cli_with_the_cluster(dask_cluster, tmp_path):
    from nbrisk_core.bench.prognosis import write_synthetic_cohort

    cohort = write_synthetic_cohort(tmp_path / "cohort", n_patients=120, seed=11)
    from nbrisk_core.cli import main

    outs = {}
    for backend in ("sequential", "dask"):
        out = tmp_path / backend
        extra = ["--scheduler", dask_cluster] if backend == "dask" else []
        code = main(["benchmark", "--data", str(cohort), "--out", str(out), "--embeddings",
                     str(cohort / "embeddings_standin.parquet"), "--grid", "test", "--seed", "7",
                     "--no-figures", "--quiet", "--n-jobs", "1", "--backend", backend, *extra])
        assert code == 0
        outs[backend] = pd.read_csv(out / "combinations.csv", keep_default_na=False, na_values=[""])
    assert json.loads((tmp_path / "dask" / "config.json").read_text())["scheduler"] == dask_cluster
    assert len(outs["dask"]) == 117
    _same_rows(outs["dask"], outs["sequential"])
