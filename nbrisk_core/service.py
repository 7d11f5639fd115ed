"""One call per step of a case, for the pages and the CLI: score, explain, prognose, save, load, export.

Each function takes typed inputs and returns the typed objects of :mod:`nbrisk_core.case`; the
pages only gather widgets' values, call one of these and render what comes back.

- :func:`model_inputs` builds each variant's model input once; :func:`score_case` and
  :func:`explain_case` both read it.
- :func:`prognose_case` turns the fitted prognosis pipeline's result into a :class:`Prognosis`
  with the reference curves the page and the PDF draw (Kaplan-Meier of the training cohort by
  MLRS group).
- :func:`save_case`, :func:`open_case` and :func:`export_case` are the store and the report behind
  the Saved cases page: the report renders a :class:`Case`, the store loads it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nbrisk_core.case import Case, ChosenSlice, Phase, Prognosis, RiskResult, VariantScore

#: the classifier whose probability, class and embedding are the case's (the paper's Swin-ART)
REFERENCE_VARIANT = "art"


def grey_slices(slices: Mapping[Phase, ChosenSlice]) -> dict[Phase, np.ndarray]:
    """The 8-bit model image of each chosen slice (DICOM HU windowed W400/L40; a 2-D upload as it is)."""
    from nbrisk_core.imaging.model_input import grey_from_chosen_slice

    return {Phase(p): grey_from_chosen_slice(s) for p, s in slices.items()}


def _card(predictor):
    """The typed model card (:class:`nbrisk_core.classifier.card.ModelCard`) of a predictor."""
    return predictor.loaded.model_card


#: a phase's chosen slice as a model reads it: a :class:`ChosenSlice`, an HU array or an 8-bit image
SliceInput = ChosenSlice | np.ndarray


def slices_sha256(slices: Mapping[Phase, SliceInput]) -> str:
    """SHA-256 of what the models read of ``slices`` (HU or 8-bit image): the Risk page's cache key."""
    from nbrisk_core.store.codec import sha256_of

    def plane(s):
        return (s.hu if s.hu is not None else s.grey) if isinstance(s, ChosenSlice) else np.asarray(s)

    return sha256_of({str(p): plane(s) for p, s in slices.items()})


def scorable(predictors: Mapping[str, object], slices: Mapping[Phase, SliceInput]) -> list[str]:
    """The variants whose phases are all present in ``slices``."""
    return [v for v, p in predictors.items() if all(ph in slices for ph in _card(p).data.phases)]


def model_inputs(predictors: Mapping[str, object], slices: Mapping[Phase, SliceInput]) -> dict[str, np.ndarray]:
    """Each scorable variant's normalised model input ``(3, H, W)`` float32, built once per case.

    Each model builds its own input from its card (:meth:`~nbrisk_core.classifier.card.DataConfig.model_input`:
    HU windowed with the card's window, unrounded; an 8-bit image as it is), as the CLI does.
    """
    return {variant: _card(predictors[variant]).data.model_input(slices)
            for variant in scorable(predictors, slices)}


def score_case(predictors: Mapping[str, object], slices: Mapping[Phase, SliceInput], *,
               inputs: Mapping[str, np.ndarray] | None = None,
               reference: str = REFERENCE_VARIANT) -> RiskResult:
    """The classifier's :class:`RiskResult` of a case: every variant that has its phases.

    Parameters
    ----------
    predictors : mapping variant -> nbrisk_core.classifier.inference.Predictor
    slices : mapping phase -> ChosenSlice, HU array or uint8 2-D image
        The chosen slices (the CLI reads them with :func:`nbrisk_core.imaging.read_phase_slice`).
    inputs : mapping variant -> model input, optional
        From :func:`model_inputs` (built here when not given).

    Raises
    ------
    InputError
        The reference variant has no model or its phases are missing.
    """
    from nbrisk_core.classifier.inference import CLASS_ORDER
    from nbrisk_core.errors import InputError

    if reference not in predictors:
        loaded = ", ".join(predictors) or "none"
        raise InputError(f"model variant {reference!r}: no model loaded (loaded: {loaded})", source="models")
    inputs = model_inputs(predictors, slices) if inputs is None else inputs
    if reference not in inputs:
        need = ", ".join(p.upper() for p in _card(predictors[reference]).data.phases)
        raise InputError(f"the {need} slice is needed for the reference model ({reference})",
                         source=reference)
    scores, embedding, seconds, device = {}, None, 0.0, ""
    for variant, x in inputs.items():
        predictor = predictors[variant]
        card = _card(predictor)
        started = time.perf_counter()
        proba, emb = predictor.logits_and_embedding(np.asarray(x)[None])
        p_hr = float(proba[0, CLASS_ORDER.index("HR")])
        threshold = float(card.decision_threshold)
        scores[variant] = VariantScore(variant, card.variant_label, p_hr,
                                       "HR" if p_hr >= threshold else "NHR", threshold, card.sha256)
        if variant == reference:
            embedding, seconds = np.asarray(emb[0], dtype=np.float32), time.perf_counter() - started
            device = predictor.config.describe()
    return RiskResult(scores=scores, embedding=embedding, reference=reference, device=device, seconds=seconds)


def explain_case(predictor, x: np.ndarray, method: str = "gradcam", target_class: str = "HR") -> np.ndarray:
    """The CAM heat map (values in [0, 1], model-input resolution) of one variant's model input."""
    from nbrisk_core.classifier.explain import compute_cam

    return compute_cam(predictor.loaded.model, x, method, target_class).heatmap


def prognose_case(pipeline, embedding, entered: Mapping, *, embedding_source: str = "") -> Prognosis:
    """The :class:`Prognosis` of a patient from the CT embedding and the clinical values as entered.

    ``entered`` is validated by the pipeline (:func:`nbrisk_core.prognosis.validation.parse_entry`
    first for text typed into a form). The Kaplan-Meier curves of the training cohort by MLRS group
    (what the page draws under the patient's curve) go with the result, so the PDF draws the same.
    """
    started = time.perf_counter()
    result = pipeline.predict_patient(embedding, entered)
    elapsed_ms = 1000 * (time.perf_counter() - started)
    return Prognosis(
        times=np.asarray(result.times), survival=np.asarray(result.survival), mlrs=float(result.mlrs),
        percentile=float(result.percentile), group=result.group, cutoff=float(result.cutoff),
        model=result.model,
        low=None if result.low is None else np.asarray(result.low),
        high=None if result.high is None else np.asarray(result.high),
        imputed=tuple(result.imputed), imputed_values=dict(result.imputed_values), notes=tuple(result.notes),
        pipeline_sha256=result.pipeline_sha256, reference_curves=reference_curves(pipeline),
        embedding_source=embedding_source, prediction_ms=elapsed_ms)


#: label of a reference curve: "<group> MLRS (training)", as the Prognosis page's legend
REFERENCE_LABEL = "{group} MLRS (training)"


def training_cohort(pipeline):
    """``(time, event, label)`` of the training patients, labelled by MLRS group as the page's legend."""
    training = pipeline.patients_[pipeline.patients_["cohort"] == "train"]
    labels = training["mlrs_group"].map(lambda g: REFERENCE_LABEL.format(group=g))
    return training["time"], training["event"], labels


def reference_curves(pipeline) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Kaplan-Meier curve of the training cohort per MLRS group (the Prognosis page's reference curves)."""
    from nbrisk_core.report.figures import cohort_km_curves

    return cohort_km_curves(*training_cohort(pipeline))


def publish_prognosis_bundle(engine, username: str, pipeline, cohort_dir, *, embeddings: dict,
                             clinical=None, models_dir=None):
    """Save ``pipeline`` (the Cohort page's full search) as the cohort's frozen bundle and audit it.

    The caller decides who may (the dashboard: admins only, docs/validation.md). The bundle is written
    atomically, the one it replaces kept as a dated backup
    (:func:`nbrisk_core.prognosis.bundle.publish_pipeline`); one ``prognosis_bundle_saved`` audit event
    names the bundle, the cohort and the combination (no patient value). Returns the
    :class:`~nbrisk_core.prognosis.bundle.PublishedBundle`.
    """
    from nbrisk_core.prognosis.bundle import publish_pipeline
    from nbrisk_core.store import audit

    published = publish_pipeline(pipeline, cohort_dir, models_dir=models_dir, clinical=clinical,
                                 embeddings=embeddings)
    card = published.card
    cohort = card.get("cohort") or {}
    audit.record(engine, username, "prognosis_bundle_saved", model_sha256=published.sha256,
                 detail={"bundle": published.path.name, "cohort": cohort.get("name"),
                         "cohort_sha256": cohort.get("sha256"), "selected": card.get("selected"),
                         "grid": card.get("grid"), "n_patients": card.get("n_patients"),
                         "events": card.get("events"),
                         "replaced_backup": (f"{published.backup.parent.name}/{published.backup.name}"
                                             if published.backup else None)})
    return published


# ---------------------------------------------------------------------------------------------- store

def save_case(engine, case: Case, username: str, *, include_series: bool = False,
              burned_in_decision: str | None = None) -> Case:
    """Store ``case`` (create, or update ``case.stored``'s version) and return it as stored.

    Chosen slices that may show burned-in identifying text are stored masked or, with
    ``burned_in_decision="confirm"``, as shown with ``username``'s confirmation
    (:func:`nbrisk_core.imaging.burned_in.clear_for_storage`); without a decision nothing is saved.
    """
    from nbrisk_core.imaging.burned_in import clear_for_storage
    from nbrisk_core.store import cases
    from nbrisk_core.store.session import case_from_record, record_from_case

    case = case.replace(slices=clear_for_storage(case.slices, burned_in_decision, username) or {})
    record = record_from_case(case, include_series=include_series)
    if case.stored is not None:
        record.case_uid, record.version = case.stored.case_uid, case.stored.version
    return case_from_record(cases.save_case(engine, record, username))


def open_case(engine, case_uid: str, username: str, **options) -> Case:
    """The stored case ``case_uid`` (audited as opened unless ``record_open=False``)."""
    from nbrisk_core.store import cases
    from nbrisk_core.store.session import case_from_record

    return case_from_record(cases.load_case(engine, case_uid, username, **options))


def export_case(engine, case_uid: str, username: str, fmt: str, *, version: int | None = None,
                cohort_curves=None, models_dir: Path | str | None = None) -> bytes:
    """Make the ``fmt`` file of a stored case and write its ``case_exported`` audit event.

    The event is written after the file was made and only then, in the call that makes it: the
    dashboard calls this when the user asks for the file ("Make PDF"), then offers its bytes for
    download.

    Parameters
    ----------
    version : int, optional
        The version the user saw. If the stored case has changed since, nothing is exported (the
        file name and the report would name a version that is no longer stored).
    models_dir : path, optional
        Where the classifier's model cards are (the PDF shows the card of the case's model).

    Raises
    ------
    CaseConflictError
        The case changed since ``version``.
    CaseNotFoundError
        No such case, or it was deleted.
    InputError
        Unknown format.
    """
    import hashlib

    from nbrisk_core.errors import InputError
    from nbrisk_core.report import EXPORT_FORMATS, find_model_card, render_export
    from nbrisk_core.store import cases

    if fmt not in EXPORT_FORMATS:
        known = ", ".join(EXPORT_FORMATS)
        raise InputError(f"export format = {fmt!r} is not known (expected one of {known})", source="format")
    case = open_case(engine, case_uid, username, record_open=False, operation="export")
    if version is not None and case.stored.version != version:
        raise cases.CaseConflictError(
            f"case {case_uid} was changed by {case.stored.updated_by} "
            f"(it is now version {case.stored.version}; "
            f"the page showed version {version}); reload the Saved cases page to export the current version",
            source="case_uid")
    card = find_model_card(models_dir, case.risk.model_sha256) if case.risk is not None else None
    data = render_export(case, fmt, cohort_curves=cohort_curves, model_card=card)
    cases.record_export(engine, case_uid, username, fmt, version=case.stored.version,
                        sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    return data
