"""Shared fixtures: the demo cohort the app opens on, and repository paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "data" / "demo"


def pytest_report_header(config):
    """One line naming the CPU the run is on and what the probe measured, so that a reader of a CI
    log knows which branch of the precision code (``bf16-matmul`` or fp32) the run exercised."""
    from nbrisk_core.classifier.probe import cpu_probe

    return f"cpu: {cpu_probe().summary()}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The default demo cohort (``make test`` builds it before pytest runs; built here if missing)."""
    if not (DEMO_DIR / "cohort.json").exists():
        from nbrisk_core.demo import build_cohort

        build_cohort(DEMO_DIR)
    return DEMO_DIR


@pytest.fixture(scope="session")
def demo_bundle(demo_dir) -> Path:
    """The demo's frozen prognosis bundle the app loads instead of fitting (``make test`` writes it with
    ``make bundle``; fitted here if missing or fitted on other data). Skips without the shipped classifier."""
    from nbrisk_core.classifier.model_io import shipped_model_path
    from nbrisk_core.config import cohort_models_dir
    from nbrisk_core.prognosis.bundle import find_cohort_bundle

    if not shipped_model_path("art", demo_dir).exists():
        pytest.skip("the shipped Swin-ART classifier is missing (its CT features feed the demo bundle)")
    found = find_cohort_bundle(demo_dir)
    if found is not None:
        return found
    from nbrisk_core.cli import main

    out = cohort_models_dir(demo_dir) / "prognosis_demo"
    assert main(["prognosis", "fit", "--cohort", str(demo_dir), "--out", str(out), "--n-jobs", "1"]) == 0
    return out


@pytest.fixture(autouse=True)
def _no_auth_for_local_tests(monkeypatch):
    # The local demo runs without sign-in; tests that need it set NBRISK_AUTH=on themselves.
    if "NBRISK_AUTH" not in os.environ:
        monkeypatch.setenv("NBRISK_AUTH", "off")


def make_case(*, size: int = 16, phases=("nc", "art", "pv"), risk=True, prognosis=True, seed: int = 7,
              **changes):
    """A small typed case as the pages hand it over (nbrisk_core.case): chosen slices, a risk and a
    prognosis result, clinical values with one imputed. ``risk``/``prognosis``: True (the default
    result), None/False (none) or the object to use."""
    import numpy as np

    from nbrisk_core.case import Case, ChosenSlice, Phase, Prognosis, RiskResult, VariantScore

    rng = np.random.default_rng(seed)
    slices = {Phase(p): ChosenSlice(p, 3 + i, 10.0 + 5 * i,
                                    hu=rng.integers(-100, 200, size=(size, size)).astype(np.int16),
                                    pixel_spacing=(0.8, 0.8), series_uid=f"2.25.{i + 1}",
                                    burned_in={"header": False, "pixel_text": False, "text_marks": 0},
                                    window={"name": "abdomen", "width": 400.0, "level": 40.0})
              for i, p in enumerate(phases)}
    result = RiskResult(
        scores={"art": VariantScore("art", "Swin-ART", 0.81, "HR", 0.5, "a" * 64),
                "mp": VariantScore("mp", "Swin-MP", 0.42, "NHR", 0.5, "c" * 64)},
        embedding=rng.normal(size=16).astype(np.float32),
        cams={"art": rng.random((7, 7)).astype(np.float32)}, device="cpu (fp32)", seconds=0.01) \
        if risk is True else (risk or None)
    times = np.linspace(0, 2500, 12)
    outcome = Prognosis(times=times, survival=np.exp(-times / 3000), mlrs=1.3, percentile=82.0, group="high",
                        cutoff=0.4, model="StepCox[backward] + RSF", imputed=("ldh",),
                        imputed_values={"ldh": 410.0}, notes=("imputed from the training cohort: LDH",),
                        pipeline_sha256="d" * 64,
                        reference_curves={
                            "high MLRS (training)": (np.array([0, 500.0]), np.array([1.0, 0.6])),
                            "low MLRS (training)": (np.array([0, 800.0]), np.array([1.0, 0.9]))},
                        embedding_source="risk page", prediction_ms=12.0) \
        if prognosis is True else (prognosis or None)
    values = dict(label="P0007", slices=slices, risk=result, prognosis=outcome,
                  study={"age": "002Y", "age_months": 30.0, "sex": "F",
                         "phases": {p: {"series_uid": f"2.25.{i + 1}", "n_slices": 20}
                                    for i, p in enumerate(phases)}},
                  clinical={"age_months": 30.0, "sex": "F", "nse": 120.0, "ldh": None})
    values.update(changes)
    return Case(**values)


@pytest.fixture
def typed_case():
    """:func:`make_case`: a factory of small typed cases."""
    return make_case


@pytest.fixture(scope="session")
def proposed_site(tmp_path_factory):
    """A 2-patient imported cohort with DICOM studies (``imported``) and the same with its slices
    proposed by the shipped segmentation model (``proposed``); copy them before changing them. Here,
    not in tests/cohort, so that tests/cohort and tests/pages share one build."""
    import shutil

    from nbrisk_core.cli import main
    from nbrisk_core.cohort.review import propose_cohort, seg_model_path
    from tests.cohort.conftest import write_site_studies

    root = tmp_path_factory.mktemp("review-site")
    clinical, mapping, studies = write_site_studies(root, 2)
    out = root / "site-b"
    assert main(["cohort", "import", "--clinical", str(clinical), "--mapping", str(mapping),
                 "--studies", str(studies), "--out", str(out), "--quiet"]) == 0
    imported = root / "imported"
    shutil.copytree(out, imported)
    if not seg_model_path(out).is_file():
        pytest.skip("no segmentation model (models/seg_demo.safetensors)")
    propose_cohort(out)
    return {"imported": imported, "proposed": out}
