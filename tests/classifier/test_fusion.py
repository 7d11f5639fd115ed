"""The fusion network (issue 26 item 1) on a tiny Swin: shapes, modality dropout, the Cox loss against
lifelines, save/load with the SHA check, resume, Grad-CAM, the embedding contract and the CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS
from nbrisk_core.classifier.fusion import (ClinicalEncoder, FusionConfig, FusionNet, bind_clinical,
                                           cox_partial_nll)
from nbrisk_core.classifier.fusion_training import fusion_card, save_fusion
from nbrisk_core.errors import InputError


def _net(n_clinical: int = 6, seed: int = 0, **kw) -> FusionNet:
    torch.manual_seed(seed)
    # no stochastic depth in the trainable stage: train and eval mode then differ only by modality dropout
    kwargs = dict(TINY_SWIN_KWARGS) | {"drop_path_rate": 0.0}
    return FusionNet(FusionConfig(n_clinical=n_clinical, backbone_kwargs=kwargs, **kw))


def _clinical_table(n: int, high_risk: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Schema-named clinical columns (labs partly missing) with a signal in NSE and the stage."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age_months": rng.uniform(2, 120, n).round(1),
        "sex": rng.choice(["F", "M"], n),
        "inrg_stage": np.where(high_risk == 1, rng.choice(["M", "L2"], n), rng.choice(["L1", "MS"], n)),
        "histology": rng.choice(["favourable", "unfavourable"], n),
        "mycn_amplified": rng.integers(0, 2, n),
        "nse": np.exp(rng.normal(3.5 + high_risk, 0.5, n)).round(2),
        "ldh": np.exp(rng.normal(6, 0.5, n)).round(1),
    })
    frame.loc[rng.random(n) < 0.25, "nse"] = np.nan
    frame.loc[rng.random(n) < 0.25, "ldh"] = np.nan
    return frame


@pytest.fixture(scope="module")
def fusion_cohort(tiny_cohort, tmp_path_factory):
    """The tiny classifier cohort plus clinical columns and overall survival."""
    path = tmp_path_factory.mktemp("fusion_cohort")
    shutil.copytree(tiny_cohort / "slices", path / "slices")
    shutil.copy(tiny_cohort / "cohort.json", path / "cohort.json")
    base = pd.read_csv(tiny_cohort / "clinical.csv", dtype=str)
    high_risk = (base["risk_group"] == "HR").to_numpy().astype(int)
    rng = np.random.default_rng(1)
    frame = pd.concat([base, _clinical_table(len(base), high_risk)], axis=1)
    frame["os_days"] = np.round(rng.exponential(np.where(high_risk == 1, 300, 1500))).astype(int) + 1
    frame["os_event"] = (rng.random(len(base)) < 0.6).astype(int)
    frame.to_csv(path / "clinical.csv", index=False)
    return path


# -- network ---------------------------------------------------------------------------------------------

def test_forward_shapes_embedding_and_identity_fusion_at_start():
    net = _net().eval()
    x, c = torch.randn(3, 3, 224, 224), torch.randn(3, 6)
    out = net.forward_all(x, c)
    assert out["logits"].shape == (3, 2) and out["embedding"].shape == (3, 16) and out["log_risk"].shape == (3,)
    assert net(x).shape == (3, 2) and net.embed(x, c).shape == (3, 16)
    logits, embedding = net.forward_with_embedding(x)
    torch.testing.assert_close(logits, net(x))
    assert float(embedding.detach().min()) >= -0.171  # after GELU, as Swin-ART's embedding
    # FiLM starts as the identity: gamma = beta = 0 whatever the clinical vector
    film = net.head.film(net.head.clinical(c))
    assert float(film.detach().abs().max()) == 0.0
    # the four stage projections make the image vector
    assert net.image_features(x).shape == (3, 4 * net.config.stage_width)


def test_early_stages_are_frozen_and_stay_in_eval_mode():
    net = _net(trainable_stages=1).train()
    frozen = [net.backbone.patch_embed, *net.backbone.layers[:3]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in net.backbone.layers[3].parameters())
    assert all(not m.training for m in frozen) and net.backbone.layers[3].training


def test_modality_dropout():
    x, c = torch.randn(8, 3, 224, 224), torch.randn(8, 6)
    # clinical always dropped in training = the image-only eval output (the identity FiLM, c = 0)
    net = _net(p_drop_clinical=1.0, p_drop_image=0.0)
    net.train()
    dropped = net.forward_all(x, c)["logits"]
    net.eval()
    torch.testing.assert_close(dropped, net.forward_all(x, None)["logits"])
    # image always dropped (clinical kept): the output no longer depends on the image
    net = _net(p_drop_clinical=0.0, p_drop_image=1.0).train()
    a = net.forward_all(x, c)["logits"]
    b = net.forward_all(torch.randn(8, 3, 224, 224), c)["logits"]
    torch.testing.assert_close(a, b)
    # never both dropped for one sample; rates as asked
    net = _net(p_drop_clinical=0.5, p_drop_image=0.5)
    torch.manual_seed(3)
    keep_c, keep_i = net.dropout_masks(20_000, "cpu")
    assert float(((keep_c == 0) & (keep_i == 0)).sum()) == 0
    assert abs(float(1 - keep_c.mean()) - 0.5) < 0.02 and abs(float(1 - keep_i.mean()) - 0.25) < 0.02
    # eval mode: deterministic, and the clinical vector matters once FiLM is non-zero
    net = _net().eval()
    torch.nn.init.normal_(net.head.film.weight, std=0.5)
    first = net.forward_all(x, c)["logits"]
    torch.testing.assert_close(first, net.forward_all(x, c)["logits"])
    assert float((first - net.forward_all(x, torch.zeros_like(c))["logits"]).abs().max()) > 1e-4


# -- Cox partial likelihood --------------------------------------------------------------------------------

def _breslow_reference(eta, time, event) -> float:
    """Breslow's negative log partial likelihood per event, a plain loop."""
    total = 0.0
    for i in np.flatnonzero(event):
        total += eta[i] - np.log(np.exp(eta[time >= time[i]]).sum())
    return -total / event.sum()


def test_cox_loss_matches_lifelines_efron_and_a_breslow_loop():
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["T"] = np.ceil(rng.exponential(5 * np.exp(-0.7 * frame["a"]))).clip(1, 12)  # many ties
    frame["E"] = (rng.random(n) < 0.7).astype(int)
    assert frame.loc[frame["E"] == 1, "T"].duplicated().any()  # the tie handling is exercised
    cph = CoxPHFitter().fit(frame, "T", "E")
    eta = frame[["a", "b"]].to_numpy() @ cph.params_.to_numpy()
    loss = cox_partial_nll(torch.as_tensor(eta), torch.as_tensor(frame["T"].to_numpy()),
                           torch.as_tensor(frame["E"].to_numpy()), ties="efron")
    assert float(loss) * frame["E"].sum() == pytest.approx(-cph.log_likelihood_, rel=1e-6)
    breslow = cox_partial_nll(torch.as_tensor(eta), torch.as_tensor(frame["T"].to_numpy()),
                              torch.as_tensor(frame["E"].to_numpy()), ties="breslow")
    assert float(breslow) == pytest.approx(_breslow_reference(eta, frame["T"].to_numpy(),
                                                              frame["E"].to_numpy().astype(bool)), rel=1e-6)
    assert float(breslow) != pytest.approx(float(loss), rel=1e-4)  # ties make the two differ


def test_cox_loss_without_ties_is_one_value_and_without_events_zero():
    eta = torch.randn(10, requires_grad=True)
    time, event = torch.arange(10.0), torch.tensor([1, 0] * 5)
    efron, breslow = cox_partial_nll(eta, time, event), cox_partial_nll(eta, time, event, ties="breslow")
    torch.testing.assert_close(efron, breslow)
    none = cox_partial_nll(eta, time, torch.zeros(10))
    none.backward()
    assert float(none) == 0.0 and float(eta.grad.abs().sum()) == 0.0
    with pytest.raises(InputError, match="ties"):
        cox_partial_nll(eta, time, event, ties="exact")


# -- clinical preprocessing -------------------------------------------------------------------------------

def test_clinical_encoder_is_fitted_on_training_rows_and_round_trips_as_json():
    high_risk = np.array([1, 0] * 10)
    table = _clinical_table(20, high_risk)
    encoder = ClinicalEncoder.fit(table.iloc[:10])
    nse = np.log1p(table["nse"].iloc[:10].dropna())
    assert encoder.mean[encoder.numeric.index("nse")] == pytest.approx(float(nse.mean()))
    matrix = encoder.transform(table)
    assert matrix.shape == (20, encoder.width) and np.isfinite(matrix).all()
    names = encoder.feature_names
    assert "nse_missing" in names and "inrg_stage=M" in names and "risk_group" not in " ".join(names)
    missing = table["nse"].isna().to_numpy()
    np.testing.assert_array_equal(matrix[:, names.index("nse_missing")], missing.astype(float))
    assert (matrix[missing, names.index("nse_z")] == 0).all()
    again = ClinicalEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    np.testing.assert_array_equal(again.transform(table), matrix)
    unknown = table.copy()
    unknown.loc[0, "inrg_stage"] = "Z"  # an unknown category: all its one-hot columns 0
    row = encoder.transform(unknown)[0]
    assert sum(row[names.index(f"inrg_stage={s}")] for s in ("L1", "L2", "M", "MS")) == 0
    with pytest.raises(InputError, match="clinical_preprocessing"):
        ClinicalEncoder.from_dict({"numeric": ["a"]})


# -- saving, loading, explaining, embedding ------------------------------------------------------------------

def _saved(tmp_path):
    table = _clinical_table(20, np.array([1, 0] * 10))
    encoder = ClinicalEncoder.fit(table)
    net = _net(n_clinical=encoder.width)
    net.encoder = encoder
    card = fusion_card(net.config, encoder)
    card["synthetic_data"] = True
    save_fusion(net, tmp_path / "fusion_tiny", card)
    return net, encoder, table


def test_save_load_round_trip_and_tamper_refusal(tmp_path):
    from nbrisk_core.classifier.model_io import load_model

    net, encoder, table = _saved(tmp_path)
    loaded = load_model(tmp_path / "fusion_tiny.safetensors")
    assert loaded.model_card.architecture == "fusion" and loaded.model_card.synthetic_data
    assert loaded.model.encoder.to_dict() == encoder.to_dict()
    # the saved weights are fp16: the original, rounded the same way, gives the loaded outputs
    rounded = _net(n_clinical=encoder.width)
    rounded.load_state_dict({k: v.half().float() for k, v in net.state_dict().items()})
    x, c = torch.randn(2, 3, 224, 224), torch.as_tensor(encoder.transform(table.iloc[:2]))
    torch.testing.assert_close(loaded.model.eval().forward_all(x, c)["logits"],
                               rounded.eval().forward_all(x, c)["logits"])
    weights = tmp_path / "fusion_tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256"):
        load_model(weights)


def test_gradcam_runs_on_the_fusion_net_with_and_without_labs(tmp_path):
    from nbrisk_core.classifier.explain import compute_cam

    net, encoder, table = _saved(tmp_path)
    net.eval()
    x = np.random.default_rng(0).normal(size=(3, 224, 224)).astype(np.float32)
    for model in (net, bind_clinical(net, table.iloc[:1])):
        result = compute_cam(model, x, "gradcam", "HR")
        assert result.heatmap.shape == (224, 224) and np.isfinite(result.heatmap).all()
        assert result.heatmap.max() <= 1 + 1e-6


def test_embedding_api_accepts_a_fusion_model(fusion_cohort, tmp_path):
    from nbrisk_core.classifier import embeddings as emb
    from nbrisk_core.classifier.model_io import load_model

    _saved(tmp_path)
    loaded = load_model(tmp_path / "fusion_tiny.safetensors")
    frame = emb.compute_embeddings(loaded, fusion_cohort)
    assert list(frame.columns) == list(emb.EMBEDDING_COLUMNS) and len(frame) == 20
    assert np.isfinite(frame.to_numpy()).all() and frame.to_numpy().std(axis=0).max() > 0


# -- training ------------------------------------------------------------------------------------------------

def _recipe(**kw):
    from nbrisk_core.classifier.fusion_training import FUSION_RECIPE_DEFAULTS
    from nbrisk_core.classifier.training import Recipe

    base = dataclasses.replace(Recipe(), **(FUSION_RECIPE_DEFAULTS | {"batch_size": 4, "max_epochs": 2,
                                                                        "early_stop_after": 100, "seed": 1}))
    return dataclasses.replace(base, **kw)


def test_resume_equals_an_uninterrupted_run(fusion_cohort, tmp_path):
    from safetensors.torch import load_file

    from nbrisk_core.classifier.fusion_training import fit_fusion, load_tables

    tables = load_tables(fusion_cohort, None, 0.2, 1, log=lambda _: None)
    encoder = ClinicalEncoder.fit(tables.clinical)
    encoded = encoder.transform(tables.clinical)
    recipe = _recipe()  # the paper's augmentation and the modality dropout both draw from the RNG

    def run(directory, recipe, resume=False):
        net = _net(n_clinical=encoder.width)
        fit_fusion(net, directory, recipe, tables, encoded, resume=resume, log=lambda _: None)

    run(tmp_path / "whole", recipe)
    run(tmp_path / "split", dataclasses.replace(recipe, max_epochs=1))
    run(tmp_path / "split", recipe, resume=True)
    for name in ("checkpoint.safetensors", "best.safetensors"):
        a, b = load_file(str(tmp_path / "whole" / name)), load_file(str(tmp_path / "split" / name))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert pd.read_csv(tmp_path / "split" / "history.csv")["epoch"].tolist() == [1, 2]
    with pytest.raises(InputError, match="--resume"):
        run(tmp_path / "empty", recipe, resume=True)


def test_cli_train_fusion_writes_a_loadable_model(fusion_cohort, tmp_path, capsys):
    from nbrisk_core.classifier.model_io import load_model
    from nbrisk_core.cli import main

    out = tmp_path / "models" / "fusion_tiny"
    code = main(["train", "--arch", "fusion", "--tiny", "--cohort", str(fusion_cohort), "--run",
                 str(tmp_path / "run"), "--out", str(out), "--epochs", "1", "--batch-size", "4", "--no-progress",
                 "--threads", "1", "--precision", "fp32"])
    assert code == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["architecture"] == "fusion" and card["synthetic_data"] is True
    assert card["training"]["recipe"]["cox_weight"] == 0.5 and card["training"]["epochs_run"] == 1
    assert set(card["metrics"]) == {"train", "val", "test"}
    assert {"fusion", "image_only"} <= set(card["metrics"]["test"])
    assert card["fusion"]["clinical_preprocessing"]["numeric"][0] == "age_months"
    loaded = load_model(out.with_suffix(".safetensors"))
    assert loaded.model.encoder.width == card["fusion"]["n_clinical"]
    assert "AUC" in capsys.readouterr().out
    # --stage pretrain and several processes are refused with one line
    assert main(["train", "--arch", "fusion", "--stage", "pretrain", "--run", str(tmp_path / "r2")]) == 2


# -- the comparison protocol's candidate ---------------------------------------------------------------------

def _compare_data(cohort_dir):
    frame = pd.read_csv(cohort_dir / "clinical.csv", dtype={"patient_id": str})
    return SimpleNamespace(cohort_dir=cohort_dir, patient_id=frame["patient_id"].to_numpy(dtype=str),
                           high_risk=(frame["risk_group"] == "HR").to_numpy().astype(int),
                           time=frame["os_days"].to_numpy(dtype=float), event=frame["os_event"].to_numpy().astype(bool),
                           clinical=frame.drop(columns=["patient_id", "risk_group", "os_days", "os_event"]),
                           ct_features=None, swin_prob=None)


def test_fusion_candidate_fit_predict(fusion_cohort, tmp_path):
    from nbrisk_core.classifier.fusion_compare import FusionCandidate
    from nbrisk_core.classifier.metrics import roc_auc

    _saved(tmp_path)
    data = _compare_data(fusion_cohort)
    train, test = np.arange(0, 14), np.arange(14, 20)
    make = lambda: FusionCandidate(model_path=tmp_path / "fusion_tiny.safetensors", steps=60,  # noqa: E731
                                   cache_dir=tmp_path / "cache")
    candidate = make().fit(data, train)
    assert isinstance(candidate, FusionCandidate) and candidate.name == "fusion"
    p, risk = candidate.predict_proba(data, test), candidate.predict_risk(data, test)
    assert p.shape == (6,) and risk.shape == (6,) and ((p >= 0) & (p <= 1)).all()
    assert list((tmp_path / "cache").glob("*.npz"))  # image vectors cached once per cohort and model
    # the clinical signal (stage, NSE) is learnt on the training rows
    assert roc_auc(data.high_risk[train], candidate.predict_proba(data, train)) > 0.8
    np.testing.assert_array_equal(make().fit(data, train).predict_proba(data, test), p)  # reproducible


def test_fusion_candidate_refuses_without_images_or_model(fusion_cohort, tmp_path):
    from nbrisk_core.classifier.fusion_compare import FusionCandidate

    data = _compare_data(fusion_cohort)
    with pytest.raises(InputError, match="no images"):
        FusionCandidate(model_path=tmp_path / "x.safetensors").fit(
            dataclasses.replace(data, cohort_dir=None) if dataclasses.is_dataclass(data)
            else SimpleNamespace(**{**vars(data), "cohort_dir": None}), np.arange(10))
    with pytest.raises(InputError, match="fusion model file is missing"):
        FusionCandidate(model_path=tmp_path / "absent.safetensors").fit(data, np.arange(10))
