"""Builds ``case_v1.sqlite``: a case saved by NBRisk before the typed case (commit 52e2db5).

Run once, at that commit, from the repository root
(``PYTHONPATH=$PWD python tests/store/data/make_case_v1.py``):
the pages' working objects of that time (dicts from the Case and Risk pages, the Prognosis page's
``dataclasses.asdict`` of its result) were saved through ``store.session.record_from_session`` and
``store.cases.save_case``, with upper-case phases in ``case_slices``. The file is the fixture of
``tests/store/test_old_cases.py`` and is not rebuilt by the tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nbrisk_core.store import cases, users
from nbrisk_core.store.db import make_engine, migrate
from nbrisk_core.store.session import record_from_session

HERE = Path(__file__).parent


def main() -> None:
    target = HERE / "case_v1.sqlite"
    target.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{target}")
    migrate(engine)
    users.add_user(engine, "alice", "correct horse battery staple 42")
    rng = np.random.default_rng(24)
    chosen = {}
    for i, phase in enumerate(("nc", "art", "pv")):
        chosen[phase] = {"hu": rng.integers(-100, 200, size=(12, 12)).astype(np.int16), "index": 3 + i,
                         "z_mm": 10.0 + 5 * i, "pixel_spacing": (0.8, 0.8), "series_uid": f"2.25.{i + 1}",
                         "burned_in_annotation": {"header": False, "pixel_text": False, "text_marks": 0},
                         "viewer_window": {"name": "abdomen", "width": 400.0, "level": 40.0}}
    case = {"age": "003Y", "age_months": 36.0, "sex": "F", "deidentified": True, "n_skipped_files": 0,
            "phases": {p: {"series_uid": f"2.25.{i + 1}", "n_slices": 20, "pixel_spacing": [0.8, 0.8],
                           "slice_spacing_mm": 5.0} for i, p in enumerate(("nc", "art", "pv"))}}
    risk = {"p_high_risk": 0.73, "risk_class": "HR", "embedding": rng.normal(size=16).tolist(),
            "model_sha256": "a" * 64, "device": "cpu",
            "variants": {"art": {"p_high_risk": 0.73, "risk_class": "HR", "model_sha256": "a" * 64},
                         "mp": {"p_high_risk": 0.61, "risk_class": "HR", "model_sha256": "c" * 64}},
            "gradcam": {"art": rng.random((7, 7)).astype(np.float32)}}
    times = np.array([100.0, 400.0, 900.0, 1500.0])
    prognosis = {"times": times, "survival": np.array([0.95, 0.8, 0.7, 0.6]), "low": None, "high": None,
                 "mlrs": 1.25, "percentile": 81.0, "group": "high", "cutoff": 0.4,
                 "model": "StepCox[backward] + RSF", "imputed": ["ldh"], "notes": ["imputed from ..."],
                 "imputed_values": {"ldh": 410.0}, "pipeline_sha256": "d" * 64,
                 "embedding_source": "risk page", "prediction_ms": 12.0}
    clinical = {"nse": 120.0, "mycn_amplified": 1}
    record = record_from_session(case=case, chosen_slices=chosen, risk_result=risk, clinical_values=clinical,
                                 prognosis_result=prognosis, label="OLD-0001", notes="saved before 0003")
    saved = cases.save_case(engine, record, "alice")
    print(saved.case_uid, saved.version)
    engine.dispose()


if __name__ == "__main__":
    main()
