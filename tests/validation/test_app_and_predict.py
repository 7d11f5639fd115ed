"""The dashboard loads the cohort's bundle instead of fitting; `nbrisk predict --prognosis BUNDLE`."""

from __future__ import annotations

import json
import shutil

import pytest

from nbrisk_core.bench.prognosis import write_synthetic_cohort
from nbrisk_core.cli import main
from nbrisk_core.prognosis.bundle import find_cohort_bundle, load_pipeline


@pytest.fixture(scope="module")
def cohort_with_bundle(tmp_path_factory):
    cohort = write_synthetic_cohort(tmp_path_factory.mktemp("site"), n_patients=100, seed=21)
    bundle = cohort / "models" / "prognosis_clinical"
    assert main(["prognosis", "fit", "--cohort", str(cohort), "--features", "clinical", "--grid", "app",
                 "--selected", "LASSO", "--n-jobs", "1", "--out", str(bundle)]) == 0
    return cohort, bundle


def test_app_uses_the_cohort_bundle_without_fitting(cohort_with_bundle, monkeypatch):
    from nbrisk_core.prognosis import pipeline as pipeline_module
    from nbrisk_ui import prognosis as ui

    cohort, bundle = cohort_with_bundle

    def refuse(*args, **kwargs):
        raise AssertionError("the app fitted although a matching bundle exists")

    monkeypatch.setattr(pipeline_module, "fit_cohort_pipeline", refuse)
    pipeline = ui.fit_pipeline(str(cohort), "app", None)
    card = json.loads((bundle / "card.json").read_text())
    assert pipeline.fit_sha256() == card["pipeline_fit_sha256"] and pipeline.selected_ == "LASSO"
    # another combination asked for (NBRISK_PROGNOSIS_MODEL): the bundle does not apply
    from nbrisk_core.prognosis.bundle import app_bundle_pipeline

    assert app_bundle_pipeline(cohort, "RSF") is None


def test_a_changed_cohort_does_not_use_the_old_bundle(cohort_with_bundle, tmp_path):
    cohort, _ = cohort_with_bundle
    copy = tmp_path / "changed"
    shutil.copytree(cohort, copy)
    assert find_cohort_bundle(copy) is not None    # same data: same hash
    text = (copy / "clinical.csv").read_text().splitlines()
    (copy / "clinical.csv").write_text("\n".join(text[:-1]) + "\n")
    assert find_cohort_bundle(copy) is None


def test_predict_with_a_bundle(cohort_with_bundle, demo_dir, repo_root, tmp_path, capsys):
    _, bundle = cohort_with_bundle
    labs = tmp_path / "labs.json"
    labs.write_text(json.dumps({"age_months": 30, "sex": "F", "inrg_stage": "M", "mycn_amplified": 1,
                                "nse": 180}))
    art = demo_dir / "slices" / "P0001" / "art.png"
    command = ["predict", "--art", str(art), "--models", str(repo_root / "models"), "--labs", str(labs),
               "--prognosis", str(bundle), "--json"]
    assert main(command) == 0
    result = json.loads(capsys.readouterr().out)
    expected = load_pipeline(bundle).pipeline.predict_patient(None, json.loads(labs.read_text()))
    assert result["prognosis"]["mlrs"] == pytest.approx(expected.mlrs, abs=1e-12)
    assert result["prognosis"]["bundle_sha256"] == load_pipeline(bundle).sha256
    assert "ferritin" in result["prognosis"]["imputed"]
    # a bundle that is not one is refused before the images are read
    assert main(["predict", "--art", str(tmp_path / "missing.png"), "--labs", str(labs), "--prognosis",
                 str(tmp_path / "no_bundle")]) == 2
    err = capsys.readouterr().err
    assert "prognosis bundle not found" in err and "missing.png" not in err


def test_publish_keeps_the_old_bundle_and_leaves_nothing_half_written(cohort_with_bundle, tmp_path, monkeypatch):
    """The full search's save (nbrisk_core.prognosis.bundle.publish_pipeline): complete or nothing; the
    replaced bundle kept under backups/ (not a candidate for the app); the cards' key changes."""
    from nbrisk_core.errors import InputError
    from nbrisk_core.prognosis import bundle as bundle_module

    cohort, shipped = cohort_with_bundle
    models = tmp_path / "models"
    shutil.copytree(shipped, models / shipped.name)
    loaded = load_pipeline(models / shipped.name)
    key = bundle_module.bundles_key(cohort, models)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module, "save_pipeline", broken)
    with pytest.raises(OSError):
        bundle_module.publish_pipeline(loaded.pipeline, cohort, models_dir=models)
    monkeypatch.undo()
    assert load_pipeline(models / shipped.name).sha256 == loaded.sha256   # untouched
    assert not list((models / bundle_module.INCOMING_FOLDER).iterdir())
    assert bundle_module.bundles_key(cohort, models) == key

    published = bundle_module.publish_pipeline(loaded.pipeline, cohort, models_dir=models,
                                               embeddings=loaded.embeddings)
    assert published.path == models / shipped.name   # the cohort's current bundle is the one replaced
    assert published.backup.parent == models / bundle_module.BACKUP_FOLDER
    assert load_pipeline(published.backup).sha256 == loaded.sha256
    assert find_cohort_bundle(cohort, models) == published.path   # backups are never candidates
    assert bundle_module.bundles_key(cohort, models) != key
    for bad in ("../elsewhere", ".hidden", "backups", ""):
        with pytest.raises(InputError, match="plain folder name"):
            bundle_module.publish_pipeline(loaded.pipeline, cohort, models_dir=models, name=bad)
