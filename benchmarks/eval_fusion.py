"""The fusion network beside Swin-ART on the same testing patients (issue 26 item 1).

``python benchmarks/eval_fusion.py [--fusion models/fusion_demo.safetensors] [--swin models/swin_art_demo.safetensors]
[--cohort data/demo] [--record]``

Both models score the patients of the fusion run's testing split (the default 8:2 split, seed 2025, which is
the split Swin-ART's card reports on): AUC of p(high risk) with its DeLong CI, Harrell's C-index of the
survival head's log-risk (fusion) and of p(high risk) (both models: Swin-ART has no survival head), the
fusion with the labs and with its image only (clinical vector dropped), and the DeLong test of the two
AUCs. ``--record`` appends the result to the fusion model's card (``evaluations``; the weights, hence the
SHA-256, stay untouched). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def delong_paired(y, a, b) -> float:
    """Two-sided p of the DeLong test of two correlated AUCs (same patients)."""
    from scipy.stats import norm

    from nbrisk_core.classifier.metrics import _delong_components

    y = np.asarray(y, dtype=int)
    comps = [_delong_components(y, np.asarray(s, dtype=float)) for s in (a, b)]
    aucs = np.array([c[0] for c in comps])
    positives = np.stack([c[1] for c in comps])  # structural components of the positives (2, m)
    negatives = np.stack([c[2] for c in comps])  # ... and of the negatives (2, n)
    cov = np.cov(positives) / positives.shape[1] + np.cov(negatives) / negatives.shape[1]
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    return float(2 * norm.sf(abs(aucs[0] - aucs[1]) / np.sqrt(var))) if var > 0 else 1.0


def main(argv=None) -> int:
    import torch

    from nbrisk_core.classifier.data import cohort_model_inputs
    from nbrisk_core.classifier.fusion_training import c_index
    from nbrisk_core.classifier.inference import Predictor
    from nbrisk_core.classifier.metrics import evaluate_scores
    from nbrisk_core.classifier.model_io import load_model, record_evaluation
    from nbrisk_core.classifier.pipeline import split_cohort
    from nbrisk_core.config import demo_cohort_dir, models_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fusion", type=Path, default=models_dir() / "fusion_demo.safetensors")
    parser.add_argument("--swin", type=Path, default=models_dir() / "swin_art_demo.safetensors")
    parser.add_argument("--cohort", type=Path, default=demo_cohort_dir())
    parser.add_argument("--record", action="store_true", help="append the result to the fusion card")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    fusion, swin = load_model(args.fusion), load_model(args.swin)
    card = fusion.card
    clinical = pd.read_csv(args.cohort / "clinical.csv", dtype={"patient_id": str, "risk_group": str})
    split = split_cohort(clinical["patient_id"], clinical["risk_group"], card["split"]["split_seed"], 0.2,
                         card["training"]["recipe"]["seed"])
    test_ids = split.loc[split["cohort"] == "test", "patient_id"].tolist()
    rows = clinical.set_index("patient_id").loc[test_ids].reset_index()
    y = (rows["risk_group"] == "HR").to_numpy().astype(int)
    time, event = rows["os_days"].to_numpy(float), rows["os_event"].to_numpy().astype(bool)

    _, x = cohort_model_inputs(args.cohort, fusion.model_card.data, test_ids)
    net = fusion.model.eval()
    encoded = torch.as_tensor(net.encoder.transform(rows))
    with torch.no_grad():
        v = net.image_features(torch.as_tensor(x))
        with_labs, image_only = net.fuse(v, encoded), net.fuse(v, None)
    p_fusion = torch.softmax(with_labs["logits"], 1)[:, 0].numpy()
    p_image = torch.softmax(image_only["logits"], 1)[:, 0].numpy()
    _, x_swin = cohort_model_inputs(args.cohort, swin.model_card.data, test_ids)
    p_swin = Predictor(swin).predict_batches(x_swin)[0][:, 0]

    def entry(p, log_risk=None):
        out = evaluate_scores(y, p)
        out["c_index_p_hr"] = c_index(time, event, p)
        if log_risk is not None:
            out["c_index_survival_head"] = c_index(time, event, log_risk)
        return out

    result = {
        "cohort": card["training_cohort"]["name"], "split": "testing split of the fusion run (8:2, seed "
        f"{card['split']['split_seed']}), {len(test_ids)} patients", "ci": "DeLong",
        "fusion": entry(p_fusion, with_labs["log_risk"].numpy()),
        "fusion_image_only": entry(p_image, image_only["log_risk"].numpy()),
        "swin_art": entry(p_swin) | {"model_sha256": swin.sha256},
        "delong_p_fusion_vs_swin_art": delong_paired(y, p_fusion, p_swin),
        "delong_p_fusion_image_only_vs_swin_art": delong_paired(y, p_image, p_swin),
        "oracle": {"auc_whole_cohort": json.loads((args.cohort / "cohort.json").read_text()).get("oracle_auc"),
                   "c_index_whole_cohort": json.loads((args.cohort / "cohort.json").read_text()).get("oracle_c_index")},
    }
    if args.record:
        record_evaluation(args.fusion, {"benchmark": "benchmarks/eval_fusion.py"} | result)
    json.dump(result, sys.stdout, indent=2, default=float)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
