"""`nbrisk score`: partitioned batch scoring, resumable, locally and on a real Dask cluster."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbrisk_core import batch_score
from nbrisk_core.batch_score import EMBEDDING_COLUMNS, parts_dir, score_cohort
from nbrisk_core.errors import InputError
from tests.batch.conftest import N, SIZE
from tests.batch.conftest import check_against as _check_against


def test_local_scoring_gives_every_patient_in_partitions(cohort, model, direct, tmp_path):
    lines = []
    out = tmp_path / "scores.parquet"
    run = score_cohort(cohort, model, out, partition_size=SIZE, progress=lines.append)
    table = pd.read_parquet(out)
    _check_against(direct, table)
    assert run.n_partitions == 4 and run.scored == N and run.done_before == 0
    assert len(lines) == 4 and lines[-1].endswith("4/4 partitions done")
    assert not parts_dir(out).exists()  # consolidated, parts removed
    meta = json.loads(pq.read_schema(out).metadata[b"nbrisk"])
    assert meta["n_patients"] == N and len(meta["model_sha256"]) == 64


def test_an_interrupted_run_resumes_without_redoing_finished_partitions(cohort, model, direct, tmp_path,
                                                                        monkeypatch):
    out = tmp_path / "scores.parquet"

    def interrupt_after_two(line):
        if "2/4 partitions done" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_cohort(cohort, model, out, partition_size=SIZE, progress=interrupt_after_two)
    assert not out.exists()
    parts = sorted(parts_dir(out).glob("part-*.parquet"))
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet"]
    # mark a finished part: if it were redone, the mark would be gone
    table = pq.read_table(parts[1])
    marked = table.set_column(1, "p_high_risk", pa.array([0.123] * table.num_rows, pa.float64()))
    pq.write_table(marked.replace_schema_metadata(table.schema.metadata), parts[1])
    calls = []
    real = batch_score.score_partition
    monkeypatch.setattr(batch_score, "score_partition",
                        lambda task: calls.append(task["index"]) or real(task))
    lines = []
    run = score_cohort(cohort, model, out, partition_size=SIZE, progress=lines.append)
    assert calls == [2, 3] and run.done_before == 2 and run.scored == N
    assert "2 of 4 partitions already written" in lines[0]
    scores = pd.read_parquet(out)
    assert (scores["p_high_risk"].iloc[SIZE:2 * SIZE] == 0.123).all()
    keep = np.r_[0:SIZE, 2 * SIZE:N]
    _check_against(direct.iloc[keep].reset_index(drop=True), scores.iloc[keep].reset_index(drop=True))


def test_parts_of_another_run_are_not_mixed_in(cohort, model, tmp_path):
    out = tmp_path / "scores.parquet"
    with pytest.raises(KeyboardInterrupt):
        score_cohort(cohort, model, out, partition_size=SIZE,
                     progress=lambda line: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(InputError, match=r"parts of another scoring run \(different partition_size\)"):
        score_cohort(cohort, model, out, partition_size=SIZE + 1, progress=lambda line: None)


def test_patients_without_slices_are_left_out_and_counted(cohort, model, direct, tmp_path):
    copy = tmp_path / "cohort"
    shutil.copytree(cohort, copy)
    shutil.rmtree(copy / "slices" / "T0003")
    out = tmp_path / "scores.parquet"
    run = score_cohort(copy, model, out, partition_size=SIZE, progress=lambda line: None)
    table = pd.read_parquet(out)
    assert run.skipped == 1 and run.scored == N - 1 and "T0003" not in set(table["patient_id"])
    _check_against(direct[direct["patient_id"] != "T0003"].reset_index(drop=True), table)


def test_cli_scores_and_refuses_bad_input(cohort, model, tmp_path, capsys):
    from nbrisk_core.cli import main

    out = tmp_path / "s.parquet"
    assert main(["score", "--cohort", str(cohort), "--classifier", str(model), "--out", str(out),
                 "--partition-size", "8", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["patients_scored"] == N and summary["partitions"] == 3
    for argv, message in [(["--out", str(tmp_path / "s.csv")], "expected a file name ending in .parquet"),
                          (["--out", str(out), "--partition-size", "0"], "expected a whole number >= 1"),
                          (["--out", str(out), "--scheduler", "tcp://127.0.0.1:1"],
                           "only used with --backend dask")]:
        assert main(["score", "--cohort", str(cohort), "--classifier", str(model), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["score", "--cohort", str(tmp_path), "--classifier", str(model), "--out", str(out)]) == 2
    assert "clinical.csv: not found" in capsys.readouterr().err


def test_synthetic_slices_rendered_on_the_fly(model, tmp_path):
    from nbrisk_core.batch_score import synthetic_plan

    out = tmp_path / "synthetic.parquet"
    run = score_cohort(None, model, out, partition_size=3, plan=synthetic_plan(7, seed=5),
                       progress=lambda line: None)
    table = pd.read_parquet(out)
    assert run.scored == 7 and list(table["patient_id"]) == [f"P{i:04d}" for i in range(1, 8)]
    assert table[list(EMBEDDING_COLUMNS)].std().gt(0).any()  # the patients differ



def test_memory_stays_flat_in_the_number_of_patients(model, tmp_path):
    """Peak traced memory (NumPy arrays included) depends on the partition size, not on N."""
    import tracemalloc

    from tests.classifier.conftest import make_cohort

    big = make_cohort(tmp_path / "big", n=48, seed=4)
    small = make_cohort(tmp_path / "small", n=12, seed=4)
    score_cohort(small, model, tmp_path / "warm.parquet", partition_size=6, progress=lambda line: None)

    def peak(cohort, size, name):
        tracemalloc.start()
        try:
            score_cohort(cohort, model, tmp_path / name, partition_size=size, progress=lambda line: None)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    flat_small, flat_big = peak(small, 6, "a.parquet"), peak(big, 6, "b.parquet")
    whole_big = peak(big, 48, "c.parquet")  # one partition holding all 48: the measure sees the images
    assert flat_big < 1.5 * flat_small, (flat_small, flat_big)
    assert whole_big > 2 * flat_big, (flat_big, whole_big)


def test_a_repeated_patient_id_is_refused(cohort, model, tmp_path):
    copy = tmp_path / "cohort"
    shutil.copytree(cohort, copy)
    clinical = pd.read_csv(copy / "clinical.csv", dtype=str)
    pd.concat([clinical, clinical.iloc[[3]]]).to_csv(copy / "clinical.csv", index=False)
    with pytest.raises(InputError, match=r"clinical.csv: patient_id 'T0003' appears more than once"):
        score_cohort(copy, model, tmp_path / "s.parquet", partition_size=SIZE, progress=lambda line: None)


def test_bench_score_refuses_bad_counts(capsys):
    from nbrisk_core.cli import main

    assert main(["bench", "score", "--patients", "10", "--workers", "1,0"]) == 2
    err = capsys.readouterr().err
    assert "worker counts >= 1" in err and len(err.strip().splitlines()) == 1
