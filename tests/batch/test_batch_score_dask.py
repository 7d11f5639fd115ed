"""`nbrisk score --backend dask`: partitions as futures on a real cluster (`dask scheduler` + two
`dask worker` on loopback, the grid's fixture)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

pytest.importorskip("distributed")

from nbrisk_core.batch_score import score_cohort  # noqa: E402
from tests.batch.conftest import SIZE, check_against  # noqa: E402
from tests.prognosis.test_engine_dask import dask_cluster  # noqa: E402,F401 - the cluster fixture


def test_partitions_run_as_futures_on_a_real_cluster(cohort, model, direct, tmp_path, dask_cluster):
    from distributed import Client

    out = tmp_path / "scores.parquet"
    lines = []
    run = score_cohort(cohort, model, out, partition_size=SIZE, backend="dask", scheduler=dask_cluster,
                       progress=lines.append)
    check_against(direct, pd.read_parquet(out))
    assert run.n_partitions == 4 and len(lines) == 4
    # both workers took partitions (each summary names the worker's process)
    workers = {s["worker"] for s in run.summaries}
    with Client(dask_cluster, timeout=10) as client:
        pids = set(client.run(os.getpid).values())
    assert len(workers) == 2 and {int(w.split()[1]) for w in workers} == pids and os.getpid() not in pids
