"""Turn the finished stages' results into report sections (paper | NBRisk | oracle)."""

from __future__ import annotations

import platform
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from nbrisk_core import __version__
from nbrisk_core.reproduce.profiles import CLASSIFIERS, PROFILES
from nbrisk_core.reproduce.report import Row, Section, paper_values
from nbrisk_core.reproduce.runner import Context

YEARS = ("1", "3", "5", "7")


def _auc_triplet(metrics: dict | None):
    if not metrics or "auc" not in metrics:
        return None
    auc = metrics["auc"]
    return [auc["value"], auc["ci_low"], auc["ci_high"]]


def _cohort_section(ctx: Context, paper: dict) -> Section:
    clinical = pd.read_csv(ctx.data_dir / "clinical.csv", dtype={"patient_id": str})
    split = ctx.results["split"]
    cohort = paper["cohort"]
    age = clinical["age_months"].quantile([0.25, 0.5, 0.75]).tolist()
    os_days = clinical["os_days"].quantile([0.25, 0.5, 0.75]).tolist()
    labs_missing = clinical.isna().mean()
    labs_missing = labs_missing[labs_missing > 0]
    return Section("Cohort and split", [
        Row("patients", cohort["n_patients"], len(clinical)),
        Row("high risk / non-high risk", f"{cohort['n_high_risk']} / {cohort['n_non_high_risk']}",
            f"{int((clinical['risk_group'] == 'HR').sum())} / {int((clinical['risk_group'] == 'NHR').sum())}"),
        Row("training / testing", f"{cohort['n_train']} / {cohort['n_test']}", f"{split['n_train']} / {split['n_test']}"),
        Row("median age, months (IQR)", [cohort["median_age_months"], *cohort["age_iqr_months"]],
            [age[1], age[0], age[2]]),
        Row("median follow-up, days (IQR)", [cohort["median_survival_days"], *cohort["survival_iqr_days"]],
            [os_days[1], os_days[0], os_days[2]]),
        Row("labs with missing values", cohort["n_labs_with_missing"], int(len(labs_missing))),
        Row("largest missing fraction", f"< {cohort['max_missing_fraction']}", float(labs_missing.max())
            if len(labs_missing) else 0.0),
    ])


def _classifier_sections(ctx: Context, paper: dict) -> list[Section]:
    oracle = ctx.results.get("oracle", {})
    rows, roc = [], go.Figure()
    for spec in CLASSIFIERS:
        result = ctx.results.get(f"classifier_{spec.key}")
        if result is None:
            continue
        reported = paper["classifiers"].get(spec.key, {})
        label = spec.label + (" (tiny configuration)" if result.get("tiny_configuration") else "")
        for cohort in ("train", "test"):
            rows.append(Row(f"{label}: {cohort} AUC (95 % CI)", reported.get(f"{cohort}_auc"),
                            _auc_triplet(result.get(cohort)),
                            oracle.get(cohort, {}).get("auc") if oracle.get("available") else None))
            rows.append(Row(f"{label}: {cohort} accuracy", reported.get(f"{cohort}_accuracy"),
                            (result.get(cohort) or {}).get("accuracy")))
        test = result.get("test")
        if test and "roc" in test:
            roc.add_trace(go.Scatter(x=test["roc"]["fpr"], y=test["roc"]["tpr"], mode="lines",
                                     name=f"{spec.label} (AUC {test['auc']['value']:.3f})"))
    roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                             showlegend=False))
    roc.update_layout(title="ROC curves, testing cohort", xaxis_title="1 - specificity",
                      yaxis_title="sensitivity", template="plotly_white")
    table = Section("Risk classifiers (HR vs NHR)", rows, [roc],
                    text="Oracle = AUC of the generator's true probability of high risk on the same patients.")
    art = (ctx.results.get("classifier_swin_art") or {}).get("test") or {}
    detail_rows = [Row(f"Swin-ART test {m}", paper["swin_art_test"].get(m), art.get(m))
                   for m in ("sensitivity", "specificity", "precision", "recall", "f1")]
    detail_rows.append(Row("Swin-ART test Cohen's kappa", None, art.get("cohen_kappa")))
    return [table, Section("Swin-ART at threshold 0.5 (testing cohort)", detail_rows)]


def _prognosis_sections(ctx: Context, paper: dict) -> list[Section]:
    from nbrisk_core.prognosis.plots import c_index_heatmap, kaplan_meier_figure

    result = ctx.results.get("prognosis")
    if result is None:
        return []
    reported, baseline_paper = paper["prognosis"], paper["baseline_lasso_cox"]
    oracle = ctx.results.get("oracle", {})
    oracle_c = {c: oracle.get(c, {}).get("c_index") for c in ("train", "test")} if oracle.get("available") else {}
    rows = [
        Row("combinations fitted / skipped", reported["n_combinations"],
            f"{result['combinations_fitted']} / {result['combinations_skipped']}"),
        Row("features kept by Cox screening", reported["n_features_after_screening"], len(result["features"])),
        Row("selected combination", reported["selected"], result["selected"]),
        Row("C-index, training", reported["c_index_train"], result["c_index_train"], oracle_c.get("train")),
        Row("C-index, testing", reported["c_index_test"], result["c_index_test"], oracle_c.get("test")),
        Row("log-rank p (high vs low MLRS), training", reported["logrank_p"]["train"],
            result["logrank_p"].get("train")),
        Row("log-rank p (high vs low MLRS), testing", reported["logrank_p"]["test"], result["logrank_p"].get("test")),
        Row("largest KS D of imputed vs observed", f"< {paper['cohort']['ks_d_max']}",
            (result.get("imputation") or {}).get("max_ks_d")),
    ]
    for cohort in ("train", "test"):
        for year in YEARS:
            rows.append(Row(f"td-AUC {year} y, {cohort}", reported["td_auc"][cohort].get(year),
                            result["td_auc"].get(cohort, {}).get(year)))
    associations = result.get("associations", {})
    for name, entry in associations.items():
        paper_value = reported["wilcoxon_p"].get(name.replace("mycn_amplified", "mycn"))
        if "r" in entry:
            rows.append(Row(f"Pearson r of MLRS with {name}", "positive (p < 0.05)", entry["r"]))
        else:
            rows.append(Row(f"Wilcoxon p of MLRS by {name}", paper_value, entry["p_value"]))
    baseline = result["baseline_lasso_cox"]
    base_rows = [Row("C-index, training", baseline_paper["c_index_train"], baseline["c_index_train"]),
                 Row("C-index, testing", baseline_paper["c_index_test"], baseline["c_index_test"])]
    for cohort in ("train", "test"):
        for year in YEARS:
            base_rows.append(Row(f"td-AUC {year} y, {cohort}", baseline_paper["td_auc"][cohort].get(year),
                                 baseline["td_auc"].get(cohort, {}).get(year)))
    figures = []
    prognosis_dir = ctx.out_dir / "prognosis"
    if (prognosis_dir / "combinations.csv").exists():
        figures.append(c_index_heatmap(pd.read_csv(prognosis_dir / "combinations.csv")))
    if (prognosis_dir / "patients.csv").exists():
        patients = pd.read_csv(prognosis_dir / "patients.csv")
        for cohort, part in patients.groupby("cohort"):
            figures.append(kaplan_meier_figure(part["time"], part["event"], part["mlrs_group"],
                                               title=f"Overall survival by MLRS group, {cohort}ing cohort"))
    if (prognosis_dir / "nomogram.json").exists():
        from nbrisk_core.prognosis.nomogram import read_nomogram
        from nbrisk_core.prognosis.nomogram_plots import nomogram_plotly

        nomogram = read_nomogram(prognosis_dir)
        figures.append(nomogram_plotly(nomogram, title="Nomogram: Cox model of "
                                       + ", ".join(p.label for p in nomogram.predictors)
                                       + " (training cohort; prognosis/nomogram.json)"))
    return [Section("Prognosis: MLRS model", rows, figures,
                    text="Oracle = Harrell's C of the generator's true linear predictor on the same patients."),
            Section("Baseline: clinical-only LASSO-Cox", base_rows)]


def _run_section(ctx: Context) -> Section:
    rows = [Row(f"wall time: {name}", None, f"{seconds:.1f} s") for name, seconds in ctx.timings.items()]
    return Section("Run", rows)


def build_sections(ctx: Context) -> tuple[list[Section], dict]:
    import torch

    from nbrisk_core.classifier.inference import cpu_name
    from nbrisk_core.cohort.format import read_meta_if_any
    from nbrisk_core.errors import InputError
    from nbrisk_core.versions import software_versions

    paper = paper_values()
    try:
        synthetic = bool(read_meta_if_any(ctx.data_dir).get("synthetic", False))
    except InputError:
        synthetic = False   # unreadable metadata: the report claims nothing about the data
    meta = {"nbrisk": __version__, "profile": ctx.profile, "synthetic cohort": synthetic,
            "profile description": _profile_description(ctx.profile), "cohort": str(Path(ctx.data_dir)),
            "seed": ctx.seed, "device": "cuda" if torch.cuda.is_available() else "cpu",
            "python": platform.python_version(), "machine": platform.machine(), "cpu": cpu_name(),
            "Swin-T initialisation": str(ctx.swin_init) if ctx.swin_init is not None else "from scratch (pretrained=False)",
            "total wall time (s)": round(sum(ctx.timings.values()), 1),
            **{f"version {k}": v for k, v in software_versions(("torch", "timm")).items()}}
    for key, result in ctx.results.items():
        if key.startswith("classifier_"):
            meta[f"sha256 {key[len('classifier_'):]}"] = result["sha256"]
    sections = [_cohort_section(ctx, paper), *_classifier_sections(ctx, paper), *_prognosis_sections(ctx, paper),
                _run_section(ctx)]
    return sections, meta


def _profile_description(profile: str) -> str:
    return PROFILES[profile]["description"]
