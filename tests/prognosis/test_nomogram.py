"""The points nomogram (nbrisk_core.prognosis.nomogram) against independent Cox fits.

- Coefficients (fitted with scikit-survival, Efron ties) equal lifelines' ``CoxPHFitter`` (Efron) to 1e-6.
- For every held-out patient, the nomogram's total points reproduce the Cox model's centred linear predictor
  and its survival at 1/3/5 years to 1e-9 (the model: scikit-survival ``CoxPHSurvivalAnalysis`` refitted
  on the same training design, its own Breslow baseline and ``predict_survival_function``).
- Centring: the centred lp equals lifelines' ``predict_log_partial_hazard`` and the baseline S0 equals
  lifelines' ``baseline_survival_`` (both centred at the training means) to 1e-6.
On a synthetic set with numeric and categorical predictors and on the demo cohort (``data/demo``) with
the prognosis pipeline's MLRS.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.prognosis.nomogram import (DAYS_PER_YEAR, MAX_POINTS, Nomogram, fit_nomogram, nomogram_for_cohort,
                                            nomogram_for_pipeline, read_nomogram, write_nomogram)

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
LIFELINES_TIGHT = {"precision": 1e-12, "r_precision": 1e-14, "max_steps": 200}


def synthetic(n: int = 260, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"mlrs": rng.normal(5, 3, n), "age_months": rng.uniform(1, 150, n),
                       "inrg_stage": rng.choice(["L1", "L2", "M", "MS"], n),
                       "mycn_amplified": rng.integers(0, 2, n)})
    lp = 0.3 * df.mlrs + 0.01 * df.age_months + 0.5 * (df.inrg_stage == "M") + 0.8 * df.mycn_amplified
    t = rng.exponential(1000 * np.exp(2 - lp))
    c = rng.uniform(0, 3000, n)
    df["time"] = np.round(np.minimum(t, c)) + 1   # whole days: tied times, so Efron != Breslow
    df["event"] = (t <= c).astype(int)
    df["cohort"] = np.where(np.arange(n) < int(0.8 * n), "train", "test")
    return df


COVARIATES = ["mlrs", "age_months", "inrg_stage", "mycn_amplified"]


def _sksurv_model(nomogram: Nomogram, train: pd.DataFrame):
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    y = np.empty(len(train), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = train["event"].astype(bool), train["time"]
    return CoxPHSurvivalAnalysis(ties="efron", tol=1e-13, n_iter=200).fit(nomogram.design(train).to_numpy(), y)


def _lifelines(nomogram: Nomogram, train: pd.DataFrame):
    from lifelines import CoxPHFitter

    X = nomogram.design(train).assign(time=train["time"].to_numpy(), event=train["event"].to_numpy())
    return CoxPHFitter().fit(X, "time", "event", fit_options=LIFELINES_TIGHT)


def check_against_cox(nomogram: Nomogram, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Every Done-when comparison; returns the largest differences (asserted here)."""
    lifelines = _lifelines(nomogram, train)
    coef_diff = float(np.max(np.abs(lifelines.params_.reindex(nomogram.coefficients.index).to_numpy()
                                    - nomogram.coefficients.to_numpy())))
    assert coef_diff < 1e-6
    # centring: lifelines centres at the training means too
    lp_ll = lifelines.predict_log_partial_hazard(nomogram.design(test)).to_numpy()
    assert np.max(np.abs(lp_ll - nomogram.linear_predictor(test))) < 1e-6
    s0_ll = lifelines.baseline_survival_["baseline survival"]
    assert np.max(np.abs(s0_ll.reindex(nomogram.baseline_time).to_numpy() - nomogram.baseline_survival)) < 1e-6

    model = _sksurv_model(nomogram, train)
    centre = float(nomogram.design(train).to_numpy().mean(axis=0) @ model.coef_)
    cox_lp = nomogram.design(test).to_numpy() @ model.coef_ - centre
    points_lp = nomogram.lp_from_points(nomogram.total_points(test))
    lp_diff = float(np.max(np.abs(points_lp - cox_lp)))
    assert lp_diff < 1e-9
    times = np.asarray(nomogram.times_years) * DAYS_PER_YEAR
    cox_s = np.array([f(times) for f in model.predict_survival_function(nomogram.design(test).to_numpy())])
    s_diff = float(np.max(np.abs(nomogram.survival(test).to_numpy() - cox_s)))
    assert s_diff < 1e-9
    return {"coef": coef_diff, "lp": lp_diff, "survival": s_diff}


def test_synthetic_nomogram_equals_independent_cox_fits():
    df = synthetic()
    train, test = df[df.cohort == "train"], df[df.cohort == "test"]
    nomogram = fit_nomogram(train, "time", "event", COVARIATES)
    assert list(nomogram.coefficients.index) == ["mlrs", "age_months", "inrg_stage=L2", "inrg_stage=M",
                                                 "inrg_stage=MS", "mycn_amplified=1"]
    check_against_cox(nomogram, train, test)
    # the true effects are recovered roughly (the data carry signal; not a hard-coded output)
    assert 0.2 < nomogram.coefficients["mlrs"] < 0.4
    assert nomogram.coefficients["mycn_amplified=1"] > 0.4


def test_points_scale_and_mapping():
    df = synthetic()
    train = df[df.cohort == "train"]
    nomogram = fit_nomogram(train, "time", "event", COVARIATES)
    table = nomogram.points_table(train)
    spans = table.max() - table.min()
    # the widest predictor spans exactly 0-100 over the training rows (extremes are training values)
    assert spans.max() == pytest.approx(MAX_POINTS, abs=1e-9)
    assert table.min().min() >= -1e-9 and table.max().max() <= MAX_POINTS + 1e-9
    assert spans.idxmax() == "mlrs"
    # points are linear in a numeric variable: one unit = points_per_unit
    d = nomogram.to_dict()
    age = next(p for p in d["predictors"] if p["name"] == "age_months")
    a = nomogram.points(train.iloc[0])["age_months"]
    b = nomogram.points(train.iloc[0].copy().replace({train.iloc[0]["age_months"]: train.iloc[0]["age_months"] + 1}))
    assert b["age_months"] - a == pytest.approx(age["points_per_unit"], abs=1e-12)
    # total points -> lp mapping as the JSON states it
    tp = nomogram.total_points(train)
    lp = tp * d["linear_predictor"]["lp_per_point"] + d["linear_predictor"]["lp_at_zero_points"]
    assert np.allclose(lp, nomogram.linear_predictor(train), atol=1e-9)
    # the reference level scores 0 points and is stated
    assert d["reference_levels"] == {"inrg_stage": "L1", "mycn_amplified": "0"}
    stage = next(p for p in d["predictors"] if p["name"] == "inrg_stage")
    assert min(stage["points"].values()) == 0.0
    # a survival tick lies where S(t) of that many points equals the tick
    axis = d["survival"]["axes"][1]
    tick = axis["ticks"][len(axis["ticks"]) // 2]
    assert nomogram.survival_from_points(tick["total_points"], [axis["years"]])[0, 0] == pytest.approx(
        tick["survival"], abs=1e-12)


def test_reference_level_choice_changes_coding_not_the_model():
    df = synthetic()
    train, test = df[df.cohort == "train"], df[df.cohort == "test"]
    a = fit_nomogram(train, "time", "event", COVARIATES)
    b = fit_nomogram(train, "time", "event", COVARIATES, reference={"inrg_stage": "M"})
    assert b.to_dict()["reference_levels"]["inrg_stage"] == "M"
    assert np.allclose(a.linear_predictor(test), b.linear_predictor(test), atol=1e-7)
    assert np.allclose(a.survival(test), b.survival(test), atol=1e-7)
    with pytest.raises(InputError, match="reference level 'X' of inrg_stage"):
        fit_nomogram(train, "time", "event", COVARIATES, reference={"inrg_stage": "X"})


def test_json_round_trip_and_files(tmp_path):
    df = synthetic()
    train, test = df[df.cohort == "train"], df[df.cohort == "test"]
    nomogram = fit_nomogram(train, "time", "event", COVARIATES, cohort={"name": "synthetic", "sha256": "ab" * 32})
    written = write_nomogram(tmp_path, nomogram)
    assert {p.name for p in written} == {"nomogram.json", "nomogram.png", "nomogram.pdf"}
    assert (tmp_path / "nomogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "nomogram.pdf").read_bytes()[:5] == b"%PDF-"
    data = json.loads((tmp_path / "nomogram.json").read_text())
    for key in ("coefficients", "reference_levels", "predictors", "points", "total_points", "linear_predictor",
                "survival", "centring", "cohort", "n", "events", "time_unit", "baseline_survival_curve"):
        assert key in data
    assert data["cohort"]["sha256"] == "ab" * 32 and data["n"] == len(train)
    again = read_nomogram(tmp_path)
    assert np.array_equal(again.total_points(test), nomogram.total_points(test))
    assert np.array_equal(again.survival(test).to_numpy(), nomogram.survival(test).to_numpy())
    assert again.to_dict() == nomogram.to_dict()
    # a redraw from the JSON alone: points per unit and the lp mapping give the same lp
    row = test.iloc[0]
    points = sum(p["points_per_unit"] * row[p["name"]] + p["points_at_zero"] if p["kind"] == "numeric"
                 else p["points"][str(int(row[p["name"]])) if p["name"] == "mycn_amplified" else row[p["name"]]]
                 for p in data["predictors"])
    lp = points * data["linear_predictor"]["lp_per_point"] + data["linear_predictor"]["lp_at_zero_points"]
    assert lp == pytest.approx(float(nomogram.linear_predictor(row)[0]), abs=1e-9)
    s = data["survival"]["baseline_survival"]["3"] ** np.exp(lp)
    assert s == pytest.approx(float(nomogram.survival(row).iloc[0, 1]), abs=1e-12)
    with pytest.raises(InputError, match="not an NBRisk nomogram"):
        Nomogram.from_json(json.dumps({"kind": "other"}))


def test_bad_input_names_the_field():
    df = synthetic()
    train = df[df.cohort == "train"].copy()
    nomogram = fit_nomogram(train, "time", "event", COVARIATES)
    row = train.iloc[0].to_dict()
    with pytest.raises(InputError, match=r"inrg_stage = 'L9': expected one of the levels L1, L2, M, MS"):
        nomogram.points({**row, "inrg_stage": "L9"})
    with pytest.raises(InputError, match="missing value.*age_months"):
        nomogram.points({k: v for k, v in row.items() if k != "age_months"})
    train.loc[train.index[0], "age_months"] = np.nan
    with pytest.raises(InputError, match="age_months is missing for 1 of"):
        fit_nomogram(train, "time", "event", COVARIATES)
    assert nomogram.outside_range({**row, "age_months": 400.0})
    assert not nomogram.outside_range(row)


def test_drawings_mark_the_patient():
    from nbrisk_core.prognosis.nomogram_plots import (nomogram_axes, nomogram_plotly, patient_marks,
                                                      survival_difference)

    df = synthetic()
    train, test = df[df.cohort == "train"], df[df.cohort == "test"]
    nomogram = fit_nomogram(train, "time", "event", COVARIATES)
    axes = nomogram_axes(nomogram)
    assert [a.key for a in axes][:2] == ["points", "mlrs"]
    assert [a.label for a in axes][-3:] == ["1-year survival", "3-year survival", "5-year survival"]
    row = test.iloc[0]
    marks = patient_marks(nomogram, row)
    assert marks["mlrs"] == pytest.approx(nomogram.points(row)["mlrs"])
    figure = nomogram_plotly(nomogram, {"patient": row})
    assert figure.data[-1].name == "patient" and len(figure.data[-1].x) == len(axes) - 1
    scenario = row.copy()
    scenario["mycn_amplified"] = 1 - int(row["mycn_amplified"])
    rows = survival_difference(nomogram, row, scenario)
    assert len(rows) == 3 and all(r["difference"] != 0 for r in rows)
    assert (rows[0]["difference"] < 0) == (int(scenario["mycn_amplified"]) == 1)


@pytest.fixture(scope="module")
def demo_pipeline():
    if not (DEMO / "clinical.csv").exists():
        pytest.skip("data/demo not built (make test builds it)")
    from nbrisk_core.prognosis.pipeline import fit_cohort_pipeline, read_cohort, stand_in_embeddings

    truth = pd.read_csv(DEMO / "truth.csv", dtype={"patient_id": str})
    pipeline = fit_cohort_pipeline(DEMO, stand_in_embeddings(truth), grid="app", selected="LASSO", n_jobs=1,
                                   backend="sequential")
    clinical, _, _ = read_cohort(DEMO)
    return pipeline, clinical


def test_demo_cohort_nomogram_reproduces_the_cox_model(demo_pipeline):
    pipeline, clinical = demo_pipeline
    nomogram = nomogram_for_pipeline(pipeline, clinical, cohort_dir=DEMO)
    patients = pipeline.patients_.merge(clinical[["patient_id", "mycn_amplified", "risk_group"]], on="patient_id")
    train, test = patients[patients.cohort == "train"], patients[patients.cohort == "test"]
    assert nomogram.n == len(train) and nomogram.events == int(train["event"].sum())
    assert len(test) > 30
    check_against_cox(nomogram, train, test)
    assert nomogram.cohort["sha256"] and nomogram.names == ("mlrs", "mycn_amplified", "risk_group")
    # nomogram_for_cohort (the entry point of nbrisk compare) gives the same nomogram from a scores table
    same = nomogram_for_cohort(DEMO, pipeline.patients_[["patient_id", "cohort", "mlrs"]])
    assert np.allclose(same.total_points(test), nomogram.total_points(test), atol=1e-9)
    assert np.allclose(same.survival(test), nomogram.survival(test), atol=1e-12)
