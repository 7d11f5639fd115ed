"""``nbrisk compare`` on the demo cohort, and its bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nbrisk_core.cli import main
from nbrisk_core.compare.data import load_compare_data


def _skip_without_classifier(demo_dir):
    from nbrisk_core.classifier.model_io import shipped_model_path

    if not shipped_model_path("art", demo_dir).exists():
        pytest.skip("the shipped Swin-ART classifier is missing")


def test_demo_data_loads_with_swin_art_outputs(demo_dir):
    _skip_without_classifier(demo_dir)
    data = load_compare_data(demo_dir)
    assert data.n == 202 and data.missing == {}
    assert "risk_group" not in data.clinical.columns
    assert list(data.ct_features.columns) == [f"ct{i:02d}" for i in range(1, 17)]
    assert ((data.swin_prob > 0) & (data.swin_prob < 1)).all()
    table = pd.read_csv(demo_dir / "clinical.csv", dtype={"patient_id": str})
    assert list(data.patient_id) == list(table["patient_id"])
    assert data.high_risk.sum() == (table["risk_group"] == "HR").sum()
    assert data.event.sum() == table["os_event"].sum()


@pytest.mark.slow
def test_compare_on_the_demo(demo_dir, tmp_path, capsys):
    _skip_without_classifier(demo_dir)
    out = tmp_path / "cmp"
    assert main(["compare", "--cohort", str(demo_dir), "--out", str(out), "--models", "clinical_lr,swin_art,combined",
                 "--bootstrap", "50", "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "swin_art: CV AUC" in printed and "report:" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 202 and report["n_development"] == 161 and report["n_test"] == 41
    assert list(report["models"]) == ["clinical_lr", "swin_art", "combined"]
    for name, entry in report["models"].items():
        assert entry["status"] == "ok"
        assert len(entry["cv"]["fold_auc"]) == 5
        assert 0.5 < entry["test"]["auc"] <= 1
    assert report["models"]["combined"]["test"]["delong_p_vs_swin_art"] is not None
    assert report["models"]["combined"]["test"]["nri"]["category_free"]["ci"][0] is not None
    predictions = pd.read_csv(out / "predictions.csv", dtype={"patient_id": str})
    assert len(predictions) == 3 * 202
    assert predictions.groupby(["model", "set"]).size().to_dict()[("swin_art", "test")] == 41
    assert (out / "report.html").is_file()
    # the nomogram of MLRS + clinical variables, fitted on the development patients only (issue 26 item 4)
    from nbrisk_core.prognosis.bundle import find_cohort_bundle
    from nbrisk_core.prognosis.nomogram import read_nomogram

    if find_cohort_bundle(demo_dir) is None:
        assert report["nomogram"]["file"] is None and "nbrisk prognosis fit" in report["nomogram"]["note"]
    else:
        nomogram = read_nomogram(out / "nomogram.json")
        assert report["nomogram"]["file"] == "nomogram.json" and "nomogram.json" in report["files"]
        assert nomogram.names[0] == "mlrs" and 0 < nomogram.n <= report["n_development"]
        # the comparison's test patients are the prognosis grid's (one 8:2 split across the project)
        from nbrisk_core.prognosis.bundle import load_pipeline

        grid = load_pipeline(find_cohort_bundle(demo_dir)).pipeline.patients_
        test_ids = set(predictions.loc[predictions["set"] == "test", "patient_id"])
        assert test_ids == set(grid.loc[grid["cohort"] == "test", "patient_id"].astype(str))


def test_missing_cohort_is_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "no-such-cohort"
    assert main(["compare", "--cohort", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert str(missing) in capsys.readouterr().err


def test_unknown_model_is_one_line_naming_it(demo_dir, tmp_path, capsys):
    assert main(["compare", "--cohort", str(demo_dir), "--out", str(tmp_path / "o"),
                 "--models", "clinical_lr,resnet"]) == 2
    err = capsys.readouterr().err
    assert "'resnet'" in err and "clinical_lr" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_swin_probability_from_cached_outputs_equals_the_forward_pass(demo_dir):
    """p(HR) from the output layer on the cached hidden outputs = the Predictor's softmax on the images."""
    _skip_without_classifier(demo_dir)
    import numpy as np

    from nbrisk_core.classifier.data import cohort_model_inputs
    from nbrisk_core.classifier.inference import Predictor
    from nbrisk_core.classifier.model_io import load_model, shipped_model_path

    data = load_compare_data(demo_dir)
    loaded = load_model(shipped_model_path("art", demo_dir))
    inputs, x = cohort_model_inputs(demo_dir, loaded.model_card.data, labels=False)
    rows = [0, 7, 100, 201]
    proba, _ = Predictor(loaded).predict_batches(x[rows])
    hr = list(loaded.model_card.class_order).index("HR")
    order = {pid: i for i, pid in enumerate(data.patient_id)}
    expected = [data.swin_prob[order[inputs.patient_ids[r]]] for r in rows]
    assert np.allclose(proba[:, hr], expected, atol=1e-5)   # measured 1.2e-7 (fp32 rounding)


@pytest.mark.slow
def test_frozen_fusion_reproduces_its_cards_test_auc(demo_dir):
    """The shipped fusion network scored by the protocol (nothing refitted) gives the test-split AUC its
    card records (benchmarks/eval_fusion.py): the same 41 patients, the same network, another code path."""
    import json

    from nbrisk_core.classifier.fusion_compare import FrozenFusionCandidate, default_fusion_model
    from nbrisk_core.classifier.metrics import roc_auc
    from nbrisk_core.compare import protocol
    from nbrisk_core.compare.data import load_compare_data

    model = default_fusion_model(demo_dir)
    if not model.exists():
        pytest.skip("the shipped fusion model is missing")
    data = load_compare_data(demo_dir)
    development, test = protocol.development_split(data)
    candidate = FrozenFusionCandidate().fit(data, development)
    auc = roc_auc(data.high_risk[test], candidate.predict_proba(data, test))
    card = json.loads(model.with_suffix(".json").read_text())
    recorded = next(e for e in card["evaluations"] if e.get("benchmark") == "benchmarks/eval_fusion.py")
    assert len(test) == recorded["fusion"]["n"]
    assert auc == pytest.approx(recorded["fusion"]["auc"]["value"], abs=1e-9)
