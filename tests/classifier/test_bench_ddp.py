"""`nbrisk bench ddp` runs 1 and 2 processes on the tiny Swin and reports the step time and the ratio
(figures only: no timing asserts)."""

from __future__ import annotations

import json

import pytest

from nbrisk_core.cli import main


def test_bench_ddp_reports_step_time_and_ratio(capsys):
    code = main(["bench", "ddp", "--json", "--nproc", "1,2", "--batch-size", "2", "--steps", "2",
                 "--warmup", "1"])
    assert code == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures["nproc"]) == {"1", "2"} and figures["arch"] == "tiny"
    one, two = figures["nproc"]["1"], figures["nproc"]["2"]
    assert one["local_batch"] == 2 and two["local_batch"] == 1 and two["backend"] == "gloo"
    assert one["steps"] == two["steps"] == 2
    assert 0 < one["q1_seconds"] <= one["step_seconds"] <= one["q3_seconds"]
    assert figures["speed_up"]["1"] == 1.0
    assert figures["speed_up"]["2"] == pytest.approx(one["step_seconds"] / two["step_seconds"], rel=0.02)
    assert figures["efficiency"]["2"] == pytest.approx(figures["speed_up"]["2"] / 2, abs=0.01)
    assert two["images_per_s"] == pytest.approx(2 / two["step_seconds"], rel=0.02)


def test_bench_ddp_refuses_an_uneven_global_batch(capsys):
    assert main(["bench", "ddp", "--nproc", "1,3", "--batch-size", "8"]) == 2
    assert "split evenly over --nproc 3" in capsys.readouterr().err
