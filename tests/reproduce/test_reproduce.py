"""`nbrisk reproduce --profile quick` end to end on a small synthetic cohort, and the runner's resume."""

from __future__ import annotations

import json
import math

import pytest

from nbrisk_core.cli import main
from nbrisk_core.reproduce.protocol import CLASSIFIERS
from nbrisk_core.reproduce.report import format_value, paper_values
from nbrisk_core.reproduce.runner import Context, Stage, StageFailed, run_stages


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    from nbrisk_core.demo import build_cohort

    out = tmp_path_factory.mktemp("repro") / "cohort"
    build_cohort(out, n_patients=30, seed=11, n_studies=0)  # 30: enough deaths for the prognosis chain
    return out


@pytest.mark.slow
def test_quick_profile_writes_every_section_with_finite_numbers(small_cohort, tmp_path):
    import hashlib

    # the Swin variants start from a (one-step, tiny) synthetic pretraining run, as --swin-init allows
    pre = tmp_path / "pre"
    assert main(["train", "--stage", "pretrain", "--tiny", "--run", str(pre), "--epochs", "1", "--steps-per-epoch",
                 "1", "--batch-size", "2", "--no-progress", "--threads", "1"]) == 0
    init = pre / "best.safetensors"
    out = tmp_path / "report"
    argv = ["reproduce", "--data", str(small_cohort), "--profile", "quick", "--out", str(out), "--swin-init", str(init)]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    html = (out / "report.html").read_text()
    for title in ("Cohort and split", "Risk classifiers (HR vs NHR)", "Prognosis: MLRS model",
                  "Baseline: clinical-only LASSO-Cox", "Run"):
        assert title in report["sections"] and title in html
    assert "Synthetic data" in html and "plotly" in html
    stages = report["stages"]
    assert {f"classifier_{s.key}" for s in CLASSIFIERS} <= set(stages)
    for spec in CLASSIFIERS:
        for cohort in ("train", "test"):
            auc = stages[f"classifier_{spec.key}"][cohort]["auc"]["value"]
            assert 0.0 <= auc <= 1.0
    prognosis = stages["prognosis"]
    assert 0.0 <= prognosis["c_index_train"] <= 1.0 and 0.0 <= prognosis["c_index_test"] <= 1.0
    assert prognosis["combinations_fitted"] + prognosis["combinations_skipped"] == 117
    init_sha = hashlib.sha256(init.read_bytes()).hexdigest()
    assert all(stages[f"classifier_{s.key}"]["init_sha256"] == (init_sha if s.arch == "swin_t" else None)
               for s in CLASSIFIERS)
    assert report["meta"]["Swin-T initialisation"] == str(init.resolve())
    oracle = stages["oracle"]
    assert oracle["available"] and 0.0 <= oracle["test"]["auc"][0] <= 1.0
    # every number in the three columns is finite where present
    for rows in report["sections"].values():
        for row in rows:
            for column in ("nbrisk", "oracle"):
                values = row[column] if isinstance(row[column], list) else [row[column]]
                for value in values:
                    if isinstance(value, float):
                        assert math.isfinite(value), row
    # every stage before the report is timed (the report cannot contain its own wall time)
    assert set(report["stage_seconds"]) >= {"split", "embeddings", "prognosis", "oracle"}
    # a second run resumes: every stage is already done, nothing is recomputed
    before = (out / "stages" / "prognosis.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "stages" / "prognosis.json").stat().st_mtime_ns == before


def test_runner_resumes_after_a_failed_stage(tmp_path):
    calls = []

    def ok(ctx):
        calls.append("ok")
        return {"value": 1}

    def flaky(ctx):
        calls.append("flaky")
        if not (ctx.out_dir / "fixed").exists():
            raise RuntimeError("disk full")
        return {"value": 2}

    stages = [Stage("first", "first stage", ok), Stage("second", "second stage", flaky)]
    ctx = Context(data_dir=tmp_path, out_dir=tmp_path / "run")
    with pytest.raises(StageFailed, match="stage 'second' .* disk full"):
        run_stages(stages, ctx, log=lambda line: None)
    assert json.loads((tmp_path / "run" / "stages" / "first.json").read_text())["status"] == "done"
    (tmp_path / "run" / "fixed").touch()
    ctx = run_stages(stages, Context(data_dir=tmp_path, out_dir=tmp_path / "run"), log=lambda line: None)
    assert calls == ["ok", "flaky", "flaky"]
    assert ctx.results == {"first": {"value": 1}, "second": {"value": 2}}


def test_runner_refuses_to_mix_settings(tmp_path):
    stage = [Stage("only", "only", lambda ctx: {})]
    run_stages(stage, Context(data_dir=tmp_path, out_dir=tmp_path / "run", profile="quick"), log=lambda s: None)
    with pytest.raises(StageFailed, match="other settings"):
        run_stages(stage, Context(data_dir=tmp_path, out_dir=tmp_path / "run", profile="paper"), log=lambda s: None)


def test_paper_values_are_the_method_spec_numbers():
    paper = paper_values()
    assert paper["classifiers"]["swin_art"]["test_auc"] == [0.770, 0.613, 0.909]
    assert paper["prognosis"]["c_index_test"] == 0.81
    assert format_value([0.77, 0.613, 0.909]) == "0.770 (0.613–0.909)"
    assert format_value(None) == "—"


def test_missing_cohort_is_an_input_error(tmp_path, capsys):
    assert main(["reproduce", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "clinical.csv" in capsys.readouterr().err


def test_missing_swin_init_is_an_input_error(small_cohort, tmp_path, capsys):
    argv = ["reproduce", "--data", str(small_cohort), "--out", str(tmp_path / "o"), "--swin-init",
            str(tmp_path / "absent.safetensors")]
    assert main(argv) == 2
    assert "--swin-init" in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("profile", ["quick", "paper"])
@pytest.mark.parametrize("spec", [CLASSIFIERS[1], CLASSIFIERS[4]], ids=lambda s: s.key)
def test_training_plan_is_what_nbrisk_train_parses_from_the_same_flags(tmp_path, profile, spec):
    """The protocol trains through the typed function, not the command line: its run and recipe are
    those ``nbrisk train`` builds from the flags the protocol passed before (so the numbers are the same)."""
    from nbrisk_core.cli import build_parser
    from nbrisk_core.cli.train import build_recipe
    from nbrisk_core.reproduce.profiles import PROFILES
    from nbrisk_core.reproduce.protocol import training_plan

    init = tmp_path / "init.safetensors"
    ctx = Context(data_dir=tmp_path / "cohort", out_dir=tmp_path / "out", profile=profile, device="cpu",
                  seed=13, swin_init=init)
    (tmp_path / "out" / "runs" / spec.key).mkdir(parents=True)
    (tmp_path / "out" / "runs" / spec.key / "checkpoint.safetensors").touch()  # an interrupted run resumes
    run, recipe = training_plan(spec, ctx)
    argv = ["train", "--arch", spec.arch, "--variant", spec.variant, "--cohort", str(ctx.data_dir),
            "--run", str(run.run), "--out", str(ctx.out_dir / "models" / spec.key), "--split-seed", "13",
            "--seed", "13", "--device", "cpu", "--no-progress", "--resume"]
    if profile == "quick":
        argv += ["--epochs", "1", "--early-stop-after", "1", "--patience", "1"]
        if spec.arch == "swin_t":
            argv.append("--tiny")
    if spec.arch == "swin_t":
        argv += ["--init", str(init)]
    args = build_parser().parse_args(argv)
    assert recipe == build_recipe(args)
    for name, value in vars(run).items():
        parsed = getattr(args, name)
        assert (str(value) if value is not None else None) == (str(parsed) if parsed is not None else None) \
            or value == parsed, name
    assert run.tiny == (PROFILES[profile]["tiny_swin"] and spec.arch == "swin_t")


def test_reproduce_never_goes_through_the_command_line():
    import ast
    import inspect

    from nbrisk_core.reproduce import protocol, sections

    for module in (protocol, sections):
        tree = ast.parse(inspect.getsource(module))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and node.module == "nbrisk_core.cli" for alias in node.names}
        assert "main" not in imported, module.__name__
