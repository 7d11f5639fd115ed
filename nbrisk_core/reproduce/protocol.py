"""The paper's protocol as resumable stages (``nbrisk reproduce``).

1. stratified 8:2 split (seeded, saved);
2. one stage per classifier: Swin-NC/-ART/-PV/-MP and the CNN baselines on ART images, trained by
   :func:`nbrisk_core.classifier.pipeline.train_run` (the function behind ``nbrisk train``, given a typed
   :class:`~nbrisk_core.classifier.training_run.TrainingRun` and recipe) and scored on every patient;
3. CT embeddings from Swin-ART (the paper's best and the product's contract);
4. the prognosis chain (MICE-PMM, screening, the combination grid, MLRS, KM, td-ROC, DCA,
   associations, the LASSO-Cox baseline) through the same code as ``nbrisk benchmark``;
5. the oracle values from the cohort's truth;
6. the report: HTML (figures embedded) and JSON, paper | NBRisk | oracle side by side.

Profiles are data (:mod:`nbrisk_core.reproduce.profiles`). ``paper`` is the paper's recipe (100 epochs
at most, early stopping after 25 with patience 10, the full grid). ``quick`` keeps every step but trains each classifier for one epoch,
the Swin variants in a tiny configuration (stated in the report), and runs the reduced grid.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError
from nbrisk_core.jsonable import json_default_or_str
from nbrisk_core.reproduce.profiles import CLASSIFIERS, PROFILES, ClassifierSpec
from nbrisk_core.reproduce.runner import Context, Stage

__all__ = ["CLASSIFIERS", "PROFILES", "ClassifierSpec", "protocol_stages", "training_plan"]

#: torch CPU threads of a training stage (``nbrisk train``'s default ``--threads``)
TRAIN_THREADS = 2


def _clinical(ctx: Context) -> pd.DataFrame:
    path = ctx.data_dir / "clinical.csv"
    if not path.exists():
        raise InputError(f"{path}: cohort clinical table not found (build one with `nbrisk demo build`)")
    return pd.read_csv(path, dtype={"patient_id": str})


def stage_split(ctx: Context) -> dict:
    from nbrisk_core.split import stratified_split

    clinical = _clinical(ctx)
    from nbrisk_core.prognosis.pipeline import split_strata

    # the prognosis engine's strata: the risk group, "unknown" where a real cohort lacks it (or the event
    # indicator when a stratum is too small); on the demo the paper's split by risk group
    split = stratified_split(clinical["patient_id"], split_strata(clinical), seed=ctx.seed)
    split.to_csv(ctx.path("split.csv"), index=False)
    merged = split.merge(clinical[["patient_id", "risk_group"]], on="patient_id")
    counts = merged.groupby(["cohort", "risk_group"]).size().unstack(fill_value=0)
    return {"seed": ctx.seed, "n_train": int((split["cohort"] == "train").sum()),
            "n_test": int((split["cohort"] == "test").sum()),
            "counts": {c: {g: int(v) for g, v in row.items()} for c, row in counts.iterrows()}}


def training_plan(spec: ClassifierSpec, ctx: Context):
    """The typed run and recipe of one classifier stage: what ``nbrisk train`` would parse from the
    equivalent flags (``--arch --variant --cohort --run --out --split-seed --seed --device --no-progress``,
    the profile's epochs, ``--tiny``, ``--init``, ``--resume``). Returns ``(TrainingRun, Recipe)``."""
    from nbrisk_core.classifier.training import Recipe
    from nbrisk_core.classifier.training_run import TrainingRun

    profile = PROFILES[ctx.profile]
    run_dir = ctx.out_dir / "runs" / spec.key
    swin = spec.arch == "swin_t"
    run = TrainingRun(run=run_dir, arch=spec.arch, variant=spec.variant, cohort=ctx.data_dir,
                      out=ctx.out_dir / "models" / spec.key, split_seed=ctx.seed, device=ctx.device,
                      no_progress=True, tiny=bool(profile["tiny_swin"] and swin),
                      init=ctx.swin_init if swin else None,
                      # an interrupted paper-profile run continues at its last epoch
                      resume=(run_dir / "checkpoint.safetensors").exists())
    return run, dataclasses.replace(Recipe(), seed=ctx.seed, **profile["recipe"])


def _classifier_stage(spec: ClassifierSpec) -> Stage:
    def run(ctx: Context) -> dict:
        import torch

        from nbrisk_core.classifier.data import load_cohort_images, to_tensor_batch
        from nbrisk_core.classifier.inference import Predictor
        from nbrisk_core.classifier.metrics import evaluate_scores, roc_curve_points
        from nbrisk_core.classifier.model_io import load_model
        from nbrisk_core.classifier.pipeline import train_run

        profile = PROFILES[ctx.profile]
        training, recipe = training_plan(spec, ctx)
        run_dir, model_stem = training.run, training.out
        torch.set_num_threads(TRAIN_THREADS)
        print(train_run(training, recipe)["summary"], flush=True)
        loaded = load_model(model_stem.with_suffix(".safetensors"))
        data = load_cohort_images(ctx.data_dir, spec.variant)
        x = to_tensor_batch(data.images, mean=loaded.card["normalisation"]["mean"],
                            std=loaded.card["normalisation"]["std"]).numpy()
        proba, _ = Predictor(loaded).predict_batches(x)
        scores = pd.DataFrame({"patient_id": data.patient_ids, "p_high_risk": proba[:, 0],
                               "is_hr": (data.risk_group == "HR").astype(int)})
        # the classifier's own split (`nbrisk train` splits the patients with slices and a risk group; on the
        # demo that is the cohort's split); its validation patients belong to the training cohort
        split = pd.read_csv(run_dir / "split.csv", dtype={"patient_id": str})
        split["cohort"] = split["cohort"].replace({"val": "train"})
        scores = scores.merge(split, on="patient_id")
        scores.to_csv(ctx.path("classifiers", f"{spec.key}_scores.csv"), index=False)
        result = {"label": spec.label, "arch": spec.arch, "variant": spec.variant, "sha256": loaded.sha256,
                  "tiny_configuration": bool(profile["tiny_swin"] and spec.arch == "swin_t"),
                  "init_sha256": loaded.card.get("training", {}).get("init_sha256"),
                  "training_hardware": loaded.card.get("training", {}).get("hardware"),
                  "epochs_run": loaded.card.get("training", {}).get("epochs_run")}
        for cohort, part in scores.groupby("cohort"):
            result[cohort] = evaluate_scores(part["is_hr"], part["p_high_risk"])
            fpr, tpr, _ = roc_curve_points(part["is_hr"], part["p_high_risk"])
            result[cohort]["roc"] = {"fpr": np.round(fpr, 5).tolist(), "tpr": np.round(tpr, 5).tolist()}
        return result

    return Stage(f"classifier_{spec.key}", f"classifier {spec.label}", run)


def stage_embeddings(ctx: Context) -> dict:
    from nbrisk_core.classifier.embeddings import compute_embeddings
    from nbrisk_core.classifier.model_io import load_model

    loaded = load_model(ctx.out_dir / "models" / "swin_art.safetensors")
    embeddings = compute_embeddings(loaded, ctx.data_dir)
    embeddings.to_parquet(ctx.path("embeddings.parquet"))
    test_auc = {s.key: ctx.results[f"classifier_{s.key}"].get("test", {}).get("auc", {}).get("value")
                for s in CLASSIFIERS if s.arch == "swin_t"}
    return {"model": "swin_art", "sha256": loaded.sha256, "n_patients": int(len(embeddings)),
            "column_sd_min": float(embeddings.std().min()), "column_sd_max": float(embeddings.std().max()),
            "best_swin_by_test_auc": max(test_auc, key=lambda k: test_auc[k] or -1.0),
            "note": "Swin-ART features are used, as in the paper and the product"}


def stage_prognosis(ctx: Context) -> dict:
    from nbrisk_core.prognosis.outputs import write_outputs
    from nbrisk_core.prognosis.pipeline import fit_cohort_pipeline

    embeddings = pd.read_parquet(ctx.path("embeddings.parquet"))
    pipeline = fit_cohort_pipeline(ctx.data_dir, embeddings, grid=PROFILES[ctx.profile]["grid"],
                                   seed=ctx.seed, progress=sys.stderr.isatty())
    (ctx.out_dir / "prognosis").mkdir(parents=True, exist_ok=True)
    write_outputs(pipeline, ctx.data_dir, ctx.out_dir / "prognosis", figures=False)
    summary = json.loads(json.dumps(pipeline.summary_, default=json_default_or_str))
    summary["screening"] = pipeline.screening_.to_dict(orient="records")
    summary["ks"] = pipeline.imputer_.ks_.to_dict(orient="records")
    summary["combinations_fitted"] = int((pipeline.combinations_["status"] == "fitted").sum())
    summary["combinations_skipped"] = int((pipeline.combinations_["status"] != "fitted").sum())
    from nbrisk_core.prognosis.metrics import mlrs_associations

    clinical = _clinical(ctx).set_index("patient_id")
    patients = pipeline.patients_.set_index("patient_id")
    associations = mlrs_associations(patients["mlrs"].to_numpy(), clinical.loc[patients.index].reset_index())
    summary["associations"] = json.loads(json.dumps(
        {name: dataclasses.asdict(result) for name, result in associations.items()},
        default=json_default_or_str))
    return summary


def stage_oracle(ctx: Context) -> dict:
    from nbrisk_core.classifier.metrics import auc_ci
    from nbrisk_core.prognosis.metrics import concordance_index

    truth_path = ctx.data_dir / "truth.csv"
    if not truth_path.exists():
        return {"available": False, "reason": f"{truth_path} not found: a real cohort has no oracle"}
    truth = pd.read_csv(truth_path, dtype={"patient_id": str})
    table = _clinical(ctx).merge(truth, on="patient_id").merge(
        pd.read_csv(ctx.path("split.csv"), dtype={"patient_id": str}), on="patient_id")
    out: dict = {"available": True}
    for cohort, part in table.groupby("cohort"):
        auc = auc_ci((part["risk_group"] == "HR").astype(int), part["p_high_risk"])
        out[cohort] = {"auc": [auc.value, auc.ci_low, auc.ci_high],
                       "c_index": concordance_index(part["os_event"], part["os_days"], part["true_linear_predictor"])}
    return out


def stage_report(ctx: Context) -> dict:
    from nbrisk_core.reproduce.report import write_report
    from nbrisk_core.reproduce.sections import build_sections

    sections, meta = build_sections(ctx)
    html_path, json_path = write_report(sections, meta, ctx.out_dir,
                                        extra={"stages": ctx.results, "stage_seconds": ctx.timings})
    return {"html": str(html_path), "json": str(json_path)}


def protocol_stages() -> list[Stage]:
    stages = [Stage("split", "stratified 8:2 split", stage_split)]
    stages += [_classifier_stage(spec) for spec in CLASSIFIERS]
    stages += [Stage("embeddings", "CT embeddings from Swin-ART", stage_embeddings),
               Stage("prognosis", "prognosis chain (imputation, screening, grid, MLRS, evaluation)",
                     stage_prognosis),
               Stage("oracle", "oracle values from the cohort's truth", stage_oracle),
               Stage("report", "HTML and JSON report", stage_report)]
    return stages
