"""A typed :class:`~nbrisk_core.case.Case` to a :class:`CaseRecord` and back.

The store keeps a case in columns (label, status, class, MLRS...), one row per chosen slice and
one per prediction; :func:`record_from_case` reads the case's fields directly and
:func:`case_from_record` rebuilds the case from them. The risk and prognosis results are stored
as typed objects (:mod:`nbrisk_core.store.codec` encodes dataclasses by type).

Cases saved before the typed case (``session["case_format"]`` absent: format 1) kept the pages'
dicts in ``CaseRecord.session``; :func:`case_from_record` reads that one known layout once
(:func:`_risk_v1`, :func:`_prognosis_v1`). Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nbrisk_core.case import (PHASES, Case, ChosenSlice, Phase, PredictionInfo, Prognosis, RiskResult,
                              SegmentationSummary, StoredInfo, VariantScore)
from nbrisk_core.store import codec
from nbrisk_core.store.cases import CaseRecord, PredictionRecord, SliceRecord

#: layout of ``CaseRecord.session`` written by :func:`record_from_case`
CASE_FORMAT = 2
#: ``SliceRecord.meta["units"]`` of a slice that is an 8-bit grey image rather than HU
GREY_UNITS = "grey8"
#: keys of ``SliceRecord.meta`` that hold a :class:`ChosenSlice`'s fields
_SLICE_META = {"pixel_spacing": "pixel_spacing", "series_uid": "series_uid",
               "burned_in_annotation": "burned_in", "viewer_window": "window"}
#: key of ``SliceRecord.meta`` holding the phase's :class:`SegmentationSummary` as plain values (absent in
#: cases saved before NBRisk measured the tumour: those open with ``segmentation=None``)
SEGMENTATION_META = "segmentation"


def _slice_record(chosen: ChosenSlice) -> SliceRecord:
    meta = {key: getattr(chosen, name) for key, name in _SLICE_META.items()
            if getattr(chosen, name) not in (None, {})}
    meta = {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v)
            for k, v in meta.items()}
    meta["units"] = "HU" if chosen.is_hu else GREY_UNITS
    if chosen.segmentation is not None:
        meta[SEGMENTATION_META] = chosen.segmentation.to_dict()
    return SliceRecord(str(chosen.phase), np.asarray(chosen.plane), chosen.index, chosen.z_mm, meta,
                       chosen.series_hu)


def _chosen_slice(record: SliceRecord) -> ChosenSlice:
    meta = record.meta or {}
    plane = np.asarray(record.hu)
    is_hu = meta.get("units", "HU") != GREY_UNITS
    fields = {name: meta[key] for key, name in _SLICE_META.items() if meta.get(key) is not None}
    if isinstance(meta.get(SEGMENTATION_META), Mapping):
        fields["segmentation"] = SegmentationSummary.from_dict(meta[SEGMENTATION_META])
    return ChosenSlice(Phase(record.phase), record.slice_index, record.slice_position_mm,
                       hu=plane if is_hu else None, grey=None if is_hu else plane,
                       series_hu=record.series_hu, **fields)


def record_from_case(case: Case, *, include_series: bool = False,
                     base: CaseRecord | None = None) -> CaseRecord:
    """The :class:`CaseRecord` that stores ``case``.

    Parameters
    ----------
    include_series : bool
        Store each phase's whole series (``ChosenSlice.series_hu``) as well as the chosen slice.
    base : CaseRecord, optional
        The stored case being edited (keeps its id, version and earlier predictions).
    """
    slices = {str(phase): _slice_record(chosen) for phase, chosen in case.slices.items()}
    predictions: list[PredictionRecord] = list(base.predictions) if base is not None else []
    risk, prognosis = case.risk, case.prognosis
    if risk is not None:
        predictions.append(PredictionRecord(
            kind="risk", result=risk, model_name=risk.reference, model_sha256=risk.model_sha256,
            input_sha256=codec.sha256_of({p: s.hu for p, s in slices.items()})))
    if prognosis is not None:
        predictions.append(PredictionRecord(
            kind="prognosis", result=prognosis, model_name=prognosis.model or None,
            model_sha256=prognosis.pipeline_sha256,
            input_sha256=codec.sha256_of({"clinical": dict(case.clinical),
                                          "risk": None if risk is None else risk.p_high_risk})))
    study = dict(case.study)
    record = CaseRecord(
        label=(case.label or (base.label if base else "") or "case").strip(),
        age_months=case.age_months, sex=case.sex, status=case.status, notes=case.notes,
        clinical_entered=dict(case.clinical), clinical_imputed=case.imputed,
        phase_meta={str(Phase(p)): dict(v) for p, v in (study.get("phases") or {}).items()},
        slices=slices, predictions=predictions,
        session={"case_format": CASE_FORMAT, "study": study},
        risk_class=None if risk is None else risk.risk_class,
        hr_probability=None if risk is None else float(risk.p_high_risk),
        mlrs=None if prognosis is None else float(prognosis.mlrs),
        mlrs_percentile=None if prognosis is None else float(prognosis.percentile),
        mlrs_group=None if prognosis is None else prognosis.group,
        include_series=include_series)
    if base is not None:
        record.case_uid, record.version = base.case_uid, base.version
    return record


def case_from_record(record: CaseRecord) -> Case:
    """The :class:`Case` a stored record holds (either storage format)."""
    session = record.session or {}
    if session.get("case_format") == CASE_FORMAT:
        risk = _latest(record, "risk", RiskResult)
        prognosis = _latest(record, "prognosis", Prognosis)
        study = session.get("study") or {}
    else:  # format 1: the pages' dicts, saved before the typed case
        old_risk = session.get("risk_result")
        if old_risk is None:
            latest = record.prediction("risk")
            old_risk = latest.result if latest is not None else None
        risk = _risk_v1(old_risk)
        prognosis = _prognosis_v1(session.get("prognosis_result"))
        study = session.get("case") if isinstance(session.get("case"), Mapping) else {}
    stored = None
    if record.case_uid is not None:
        stored = StoredInfo(
            case_uid=record.case_uid, version=record.version, created_at=record.created_at,
            created_by=record.created_by, updated_at=record.updated_at, updated_by=record.updated_by,
            reviewed_at=record.reviewed_at, reviewed_by=record.reviewed_by,
            signed_off_at=record.signed_off_at, signed_off_by=record.signed_off_by, owner=record.owner,
            software_versions=dict(record.software_versions or {}),
            predictions=tuple(PredictionInfo(p.kind, p.model_name, p.model_sha256, p.input_sha256,
                                             p.created_at, p.created_by, dict(p.software_versions or {}))
                              for p in record.predictions))
    slices = {Phase(p): _chosen_slice(s) for p, s in record.slices.items()}
    return Case(label=record.label, slices={p: slices[p] for p in PHASES if p in slices}, study=study,
                risk=risk, clinical=dict(record.clinical_entered or {}), prognosis=prognosis,
                status=record.status, notes=record.notes or "", stored=stored)


def _latest(record: CaseRecord, kind: str, cls: type):
    latest = record.prediction(kind)
    return latest.result if latest is not None and isinstance(latest.result, cls) else None


def _risk_v1(saved: Any) -> RiskResult | None:
    """The Risk page's dict of format 1: ``p_high_risk``, ``risk_class``, ``embedding``,
    ``model_sha256``, ``device``, ``variants`` (variant -> the same three) and ``gradcam`` (phase -> map)."""
    if not isinstance(saved, Mapping) or saved.get("p_high_risk") is None:
        return None
    from nbrisk_core.imaging.model_input import INPUT_VARIANTS

    def score(variant: str, values: Mapping) -> VariantScore:
        p = float(values["p_high_risk"])
        label = INPUT_VARIANTS[variant].label if variant in INPUT_VARIANTS else variant
        return VariantScore(variant, label, p, values.get("risk_class") or ("HR" if p >= 0.5 else "NHR"), 0.5,
                            str(values.get("model_sha256") or ""))

    scores = {str(v): score(str(v), values) for v, values in (saved.get("variants") or {}).items()}
    scores["art"] = score("art", saved)
    cams = saved.get("gradcam")
    cams = {Phase(p): np.asarray(m) for p, m in cams.items()} if isinstance(cams, Mapping) else {}
    embedding = saved.get("embedding")
    embedding = np.asarray([] if embedding is None else embedding, dtype=float)
    return RiskResult(scores=scores, embedding=embedding, cams=cams, reference="art",
                      device=str(saved.get("device") or ""))


#: fields of the Prognosis page's dict of format 1 (``dataclasses.asdict`` of its result, plus two)
_PROGNOSIS_V1 = ("times", "survival", "mlrs", "percentile", "group", "cutoff", "model", "low", "high",
                 "imputed", "imputed_values", "notes", "pipeline_sha256", "embedding_source", "prediction_ms",
                 "synthetic")


def _prognosis_v1(saved: Any) -> Prognosis | None:
    if not isinstance(saved, Mapping) or saved.get("mlrs") is None or saved.get("times") is None:
        return None
    return Prognosis(**{name: saved[name] for name in _PROGNOSIS_V1 if saved.get(name) is not None})
