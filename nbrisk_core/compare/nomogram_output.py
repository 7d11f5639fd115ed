"""``nomogram.json`` in a ``nbrisk compare`` output folder (issue 26 item 4).

The nomogram is the Cox model of the MLRS plus the default clinical variables
(:data:`nbrisk_core.prognosis.nomogram.DEFAULT_CLINICAL`), fitted on the comparison's development patients
only. The MLRS comes from the cohort's frozen prognosis bundle (:func:`~nbrisk_core.prognosis.bundle.
find_cohort_bundle`: fitted on exactly this cohort), whose per-patient scores the bundle keeps; without such a
bundle no nomogram is written and ``report.json`` says why (``nomogram`` -> ``{"file": null, "note": ...}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nbrisk_core.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from nbrisk_core.compare.protocol import CompareResult


def write_compare_nomogram(result: "CompareResult", out_dir: Path) -> dict:
    """Fit and write the nomogram (``nomogram.json``, ``.png``, ``.pdf``) for ``result``'s cohort."""
    from nbrisk_core.prognosis.bundle import find_cohort_bundle, load_pipeline
    from nbrisk_core.prognosis.nomogram import nomogram_for_cohort, write_nomogram

    data = result.data
    if data.cohort_dir is None:
        result.report["nomogram"] = {"file": None, "note": "no cohort folder"}
        return {}
    bundle_dir = find_cohort_bundle(data.cohort_dir)
    if bundle_dir is None:
        result.report["nomogram"] = {
            "file": None, "note": f"no prognosis bundle fitted on this cohort (make one with: nbrisk prognosis "
                                  f"fit --cohort {data.cohort_dir} --out models/NAME)"}
        return {}
    pipeline = load_pipeline(bundle_dir).pipeline
    development = [str(p) for p in data.patient_id[result.development_idx]]
    try:
        nomogram = nomogram_for_cohort(data.cohort_dir, pipeline.patients_[["patient_id", "mlrs"]],
                                       train_ids=development)
    except InputError as error:
        result.report["nomogram"] = {"file": None, "note": f"not fitted: {error}"}
        return {}
    written = write_nomogram(out_dir, nomogram)
    result.report["nomogram"] = {"file": "nomogram.json", "bundle": Path(bundle_dir).name,
                                 "predictors": list(nomogram.names), "fitted_on": "development patients",
                                 "n_fit": len(development)}
    return {Path(p).name: Path(p) for p in written}
