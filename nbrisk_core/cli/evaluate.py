"""`nbrisk evaluate`: AUC (95 % CI: DeLong, or bootstrap), ROC, confusion matrix, sensitivity,
specificity, precision, recall, accuracy, Cohen's kappa and F1 of one or more models on a cohort.

``--split train|test|val|all`` picks patients by a run's ``split.csv`` (``--split-file``) or the
default 8:2 split of the cohort. Several ``--model`` give the paper's side-by-side table (train and
test columns). ``--json`` prints the metrics; ``--figures DIR`` writes plotly ROC / confusion HTML.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="metrics with CIs of classifier(s) on a cohort",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="model .safetensors (repeatable; default the shipped Swin-ART)")
    p.add_argument("--cohort", help="cohort directory (default data/demo)")
    p.add_argument("--split", default="all", choices=("all", "train", "test", "val", "train,test"),
                   help="patients to score (default all); 'train,test' gives the paper's two columns")
    p.add_argument("--split-file", help="split.csv of a training run (else the default 8:2 split)")
    p.add_argument("--ci", default="delong", choices=("delong", "bootstrap"))
    p.add_argument("--threshold", type=float, help="decision threshold on p(HR) (default: the model card's)")
    p.add_argument("--figures", help="write ROC and confusion-matrix figures (HTML) into this folder")
    p.add_argument("--record", action="store_true",
                   help="record the results in each model's card under 'evaluations' (weights untouched)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(handler=run)


def evaluate_models(model_paths, cohort_dir, cohorts, split_file=None, ci="delong", threshold=None):
    """``{model label: {cohort: metrics}}``, ``{model label: {cohort: (y, score)}}``."""
    import sys
    from pathlib import Path

    import pandas as pd

    from nbrisk_core.classifier.data import cohort_model_inputs, skipped_note, usable_patients
    from nbrisk_core.classifier.embeddings import store_embeddings
    from nbrisk_core.classifier.inference import Predictor
    from nbrisk_core.classifier.metrics import evaluate_scores
    from nbrisk_core.classifier.model_io import load_model
    from nbrisk_core.errors import InputError
    from nbrisk_core.imaging.model_input import INPUT_VARIANTS
    from nbrisk_core.split import stratified_split

    clinical = pd.read_csv(Path(cohort_dir) / "clinical.csv", dtype={"patient_id": str, "risk_group": str})
    if "risk_group" not in clinical.columns:
        raise InputError(f"{Path(cohort_dir) / 'clinical.csv'}: column 'risk_group' (HR/NHR) is missing: "
                         "evaluation compares the model with it")
    results, curves = {}, {}
    for path in model_paths:
        loaded = load_model(Path(path))
        # the patients `nbrisk train` used: those with chosen slices and a risk group (an imported cohort
        # may have neither for some); the default split is made on them, as in training
        usable, skipped = usable_patients(cohort_dir, clinical, loaded.model_card.phases)
        if skipped:
            print(f"NOTE: {skipped_note(skipped, len(clinical))}", file=sys.stderr)
        if split_file:
            split = pd.read_csv(split_file, dtype={"patient_id": str})
        else:
            split = stratified_split(usable["patient_id"], usable["risk_group"])
        card = loaded.model_card
        label = card.record.get("variant_label", Path(path).stem)
        if card.architecture != "swin_t":
            label = f"{card.architecture}-{card.variant.upper()}"
        if label in results:  # two models of one kind: each keeps its own row (and --record its own card)
            label = base = f"{label} ({Path(path).stem})"
            n = 2
            while label in results:
                label, n = f"{base} #{n}", n + 1
        data, x = cohort_model_inputs(cohort_dir, card.data, patient_ids=usable["patient_id"])
        proba, embedding = Predictor(loaded).predict_batches(x)
        store_embeddings(loaded, cohort_dir, data.patient_ids, embedding)  # one pass serves both
        is_hr = (data.labels == 0).astype(int)
        where = split.set_index("patient_id")["cohort"].reindex(data.patient_ids).to_numpy()
        cut = threshold if threshold is not None else card.decision_threshold
        results[label], curves[label] = {}, {}
        for cohort in cohorts:
            mask = (where == cohort) if cohort != "all" else (where == where)
            if not mask.any():
                raise InputError(f"--split {cohort}: no patient of {cohort_dir} is in that cohort")
            results[label][cohort] = evaluate_scores(is_hr[mask], proba[mask, 0], cut, ci)
            curves[label][cohort] = (is_hr[mask], proba[mask, 0])
    return results, curves


def run(args) -> int:
    import json
    from pathlib import Path

    import torch

    from nbrisk_core.classifier.metrics import comparison_table, confusion, confusion_figure, roc_figure
    from nbrisk_core.classifier.model_io import shipped_model_path
    from nbrisk_core.cohort.format import read_meta_if_any
    from nbrisk_core.config import demo_cohort_dir
    from nbrisk_core.errors import InputError

    torch.set_num_threads(max(1, args.threads))
    cohort_dir = Path(args.cohort) if args.cohort else demo_cohort_dir()
    if not (cohort_dir / "clinical.csv").exists():
        raise InputError(f"--cohort {cohort_dir}: no clinical.csv")
    models = args.model or [str(shipped_model_path("art", cohort_dir))]
    cohorts = args.split.split(",")
    results, curves = evaluate_models(models, cohort_dir, cohorts, args.split_file, args.ci, args.threshold)
    meta = read_meta_if_any(cohort_dir)
    oracle = meta.get("oracle_auc")
    if args.record:
        from nbrisk_core.classifier.model_io import record_evaluation

        for path, (label, by_cohort) in zip(models, results.items()):
            record_evaluation(Path(path), {"cohort": meta.get("name", cohort_dir.name), "seed": meta.get("seed"),
                                           "n_patients": meta.get("n_patients"), "oracle_auc": oracle,
                                           "split": args.split_file or "default 8:2 split (seed 2025)",
                                           "ci": args.ci, "results": by_cohort})
            print(f"recorded in the model card of {Path(path).name}")
    if args.figures:
        out = Path(args.figures)
        out.mkdir(parents=True, exist_ok=True)
        for cohort in cohorts:
            roc_figure({m: c[cohort] for m, c in curves.items()}).write_html(out / f"roc_{cohort}.html")
            for model, c in curves.items():
                confusion_figure(confusion(*c[cohort]), f"{model} ({cohort})").write_html(
                    out / f"confusion_{model}_{cohort}.html")
    if args.json:
        print(json.dumps({"cohort": str(cohort_dir), "oracle_auc": oracle, "results": results}, default=float))
        return 0
    table = comparison_table(results)
    print(table.to_string())
    if oracle is not None:
        print(f"oracle AUC of this cohort (known truth): {oracle:.3f}")
    return 0
