"""Results back into the archive study: DICOM SR (TID 1500), DICOM SEG, encapsulated PDF, Grad-CAM capture.

:func:`push_case` files new series into the study a saved case was pulled from (STOW-RS):

* a Comprehensive 3D SR, TID 1500 Measurement Report made with highdicom: one measurement group per
  classifier variant that scored the case (``RiskResult.scores``: ``p(high risk)``, the model named
  in its Algorithm Identification with the model file's SHA-256 as the version) and, when the case
  has a :class:`~nbrisk_core.case.Prognosis`, a group with the MLRS, its percentile and its group;
  each group references the chosen slices' original instances (source images);
* the case's PDF report as Encapsulated PDF (the bytes that
  :func:`~nbrisk_core.report.export.render_export` makes of the typed case);
* the CAM overlay of each phase that has one (``RiskResult.cams``) as Secondary Capture: the PDF's
  image (:func:`~nbrisk_core.report.figures.slice_png`, i.e.
  :func:`~nbrisk_core.imaging.render.cam_overlay`), its series and image comments saying "NOT FOR
  DIAGNOSIS" (also written into the pixels), Burned In Annotation YES;
* the tumour segmentation of each phase whose chosen slice carries an automatic one
  (``ChosenSlice.segmentation``, source ``automatic``) as DICOM SEG (:func:`build_segs`): the case keeps
  the measurements, not the mask, so the phases' series are retrieved from the archive again, read
  as the pull reads them and segmented with the shipped network
  (:func:`~nbrisk_core.segment.inference.segment_phases`, all the case's phases together, as the Case
  page proposed them); the mask is pushed only when the network is the one that segmented the case
  and its measurements equal the case's. Each SEG references the archive's original CT instances
  (:mod:`nbrisk_core.segment.dicom_seg`). A phase without a segmentation, with a seed click's, with
  no tumour found, without the model (or another model) is skipped with its reason in
  :attr:`PushResult.seg_skipped`; the rest of the push goes on.

Everything is read from the typed :class:`~nbrisk_core.case.Case` the store gives back
(:func:`nbrisk_core.service.open_case`). The case keeps the archive's Study Instance UID only where the
site allows (``keep_study_link``: ``Case.study["archive"]``, put there by the pull through
:func:`~nbrisk_core.imaging.case.case_meta`); without it there is nothing to push into and
:class:`PacsError` ``no_link`` says so. The chosen slices are found again by recomputing the
de-identified series UIDs from the study UID (:func:`~nbrisk_core.pacs.pull.link_deidentifier`) and
taking the instance nearest to the chosen slice's ``z_mm`` (else the one at its ``index``). The
patient and study attributes the new objects need are read from the archive at push time and held in
memory only. Every push is one ``case_pushed`` audit event (the kinds and counts of what was stored,
the PDF's SHA-256, the model SHA-256; no identifiers).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from nbrisk_core.case import Case, Phase
from nbrisk_core.pacs.errors import PacsError
from nbrisk_core.pacs.pull import link_deidentifier

#: the private coding scheme of NBRisk's concepts (PS3.16 8.2: a ``99`` prefix is a local scheme)
SCHEME = "99NBRISK"
CONCEPTS = {
    "p_high_risk": ("NBR001", "Probability of high-risk neuroblastoma"),
    "mlrs": ("NBR002", "Multi-level risk score (MLRS)"),
    "mlrs_group": ("NBR003", "MLRS risk group"),
    "mlrs_percentile": ("NBR004", "MLRS cohort percentile"),
    "high": ("NBR010", "High MLRS group"),
    "low": ("NBR011", "Low MLRS group"),
}
NOT_FOR_DIAGNOSIS = "NBRisk Grad-CAM - NOT FOR DIAGNOSIS (research use only)"
SR_DESCRIPTION = "NBRisk risk report (research use only)"
PDF_DESCRIPTION = "NBRisk PDF report (research use only)"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
#: series numbers of the pushed objects (high, out of the way of the scanner's)
SERIES_NUMBERS = {"sr": 9901, "pdf": 9902, "gradcam": 9903}
#: patient and study attributes copied into the new objects (read from the archive at push time)
STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
)


def code(key: str):
    from highdicom.sr import CodedConcept

    value, meaning = CONCEPTS[key]
    return CodedConcept(value, SCHEME, meaning)


@dataclass
class PushResult:
    case_uid: str
    study_uid: str
    archive: str
    stored: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    pdf_sha256: str = ""
    #: phase -> why no SEG was pushed for it (:func:`build_segs`)
    seg_skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "case_uid": self.case_uid,
            "study_uid": self.study_uid,
            "archive": self.archive,
            "stored": list(self.stored),
            "kinds": list(self.kinds),
            "pdf_sha256": self.pdf_sha256,
            "seg_skipped": dict(self.seg_skipped),
        }


def study_link(case: Case) -> dict | None:
    """The archive link a case keeps (``{"archive", "study_uid"}`` in its study summary), or None."""
    link = case.study.get("archive")
    return dict(link) if isinstance(link, Mapping) and link.get("study_uid") else None


def _case_uid(case: Case) -> str:
    return case.stored.case_uid if case.stored is not None else "(unsaved)"


def _z_of(ds: Dataset) -> float | None:
    try:
        orientation = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        position = np.asarray([float(v) for v in ds.ImagePositionPatient])
    except (AttributeError, TypeError, ValueError):
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    return float(np.dot(position, normal))


def chosen_instances(archive, case: Case, study_uid: str) -> dict[Phase, Dataset]:
    """Phase -> the archive's instance (attributes, no pixels) of the slice the case chose."""
    from nbrisk_core.pacs.pull import ct_series

    deid = link_deidentifier(study_uid)
    by_remapped = {deid.uid(s.series_uid): s for s in ct_series(archive, study_uid)}
    phases = case.study.get("phases") or {}
    found = {}
    for phase, chosen in case.slices.items():
        remapped = chosen.series_uid or (phases.get(phase) or {}).get("series_uid")
        series = by_remapped.get(str(remapped))
        if series is None:
            raise PacsError(
                f"case {_case_uid(case)}: the {phase} slice's series is not in study {study_uid} "
                "any more (or the case was not pulled with the study link kept)",
                kind="not_found",
            )
        instances = [
            (z, ds)
            for ds in archive.series_metadata(study_uid, series.series_uid)
            if (z := _z_of(ds)) is not None
        ]
        if not instances:
            raise PacsError(
                f"study {study_uid}: series {series.number or series.series_uid} has no instance with "
                "a position",
                kind="not_found",
            )
        instances.sort(key=lambda item: item[0])
        if chosen.z_mm is not None:
            z, ds = min(instances, key=lambda item: abs(item[0] - float(chosen.z_mm)))
        elif chosen.index is not None and 0 <= chosen.index < len(instances):
            z, ds = instances[chosen.index]
        else:
            raise PacsError(
                f"case {_case_uid(case)}: the {phase} slice has no position or index", kind="input"
            )
        found[phase] = ds
    return found


def _risk_groups(case: Case, sources):
    """One measurement group per scored classifier variant, and one for the prognosis (MLRS)."""
    import highdicom as hd
    from highdicom.sr import (
        AlgorithmIdentification,
        Measurement,
        MeasurementsAndQualitativeEvaluations,
        QualitativeEvaluation,
        SourceImageForMeasurementGroup,
        TrackingIdentifier,
    )

    source_images = [SourceImageForMeasurementGroup.from_source_image(ds) for ds in sources]
    groups = []
    scores = case.risk.scores.values() if case.risk is not None else ()
    for score in scores:
        name = score.label or score.variant or "NBRisk classifier"
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=f"NBRisk risk: {name}"[:64]),
                algorithm_id=AlgorithmIdentification(
                    name=name[:64], version=(score.model_sha256 or "unknown")[:64]
                ),
                measurements=[
                    Measurement(
                        name=code("p_high_risk"),
                        value=float(score.p_high_risk),
                        unit=hd.sr.CodedConcept("1", "UCUM", "no units"),
                    )
                ],
                source_images=source_images,
            )
        )
    prognosis = case.prognosis
    if prognosis is not None:
        measurements = [
            Measurement(
                name=code("mlrs"),
                value=float(prognosis.mlrs),
                unit=hd.sr.CodedConcept("{score}", "UCUM", "score"),
            ),
            Measurement(
                name=code("mlrs_percentile"),
                value=float(prognosis.percentile),
                unit=hd.sr.CodedConcept("%", "UCUM", "percent"),
            ),
        ]
        evaluations = (
            [QualitativeEvaluation(code("mlrs_group"), code(prognosis.group))]
            if prognosis.group in ("high", "low")
            else None
        )
        name = prognosis.model or "NBRisk MLRS"
        algorithm = AlgorithmIdentification(
            name=name[:64], version=(prognosis.pipeline_sha256 or "unknown")[:64]
        )
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="NBRisk MLRS"),
                algorithm_id=algorithm,
                measurements=measurements,
                qualitative_evaluations=evaluations,
                source_images=source_images,
            )
        )
    return groups


def build_sr(case: Case, sources: Mapping[Phase, Dataset]) -> Dataset:
    """The TID 1500 measurement report of a case, referencing the chosen slices' instances."""
    import highdicom as hd
    from highdicom.sr import (
        Comprehensive3DSR,
        DeviceObserverIdentifyingAttributes,
        MeasurementReport,
        ObservationContext,
        ObserverContext,
    )
    from pydicom.sr.codedict import codes

    from nbrisk_core import __version__

    evidence = list(sources.values())
    if case.risk is None:
        raise PacsError(
            f"case {_case_uid(case)} has no risk result to push; run the Risk page first", kind="input"
        )
    groups = _risk_groups(case, evidence)
    observer = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="NBRisk", manufacturer_name="NBRisk", model_name=f"NBRisk {__version__}"
        ),
    )
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=hd.sr.CodedConcept("25045-6", "LN", "CT unspecified body region"),
        imaging_measurements=groups,
    )
    sr = Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBERS["sr"],
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="NBRisk",
        is_complete=True,
    )
    sr.SeriesDescription = SR_DESCRIPTION
    return sr


def _base(study: Dataset, sop_class: str, modality: str, series_key: str, description: str) -> Dataset:
    now = datetime.now(timezone.utc)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    for keyword in STUDY_KEYWORDS:
        setattr(ds, keyword, study.get(keyword, ""))
    ds.Modality = modality
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = generate_uid(), SERIES_NUMBERS[series_key], 1
    ds.SeriesDescription = description
    ds.Manufacturer = "NBRisk"
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def build_pdf(study: Dataset, pdf: bytes) -> Dataset:
    """The PDF report as an Encapsulated PDF instance (PS3.3 A.45.1) of the study."""
    ds = _base(study, ENCAPSULATED_PDF, "DOC", "pdf", PDF_DESCRIPTION)
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = "NBRisk report (research use only)"
    ds.ConceptNameCodeSequence = DicomSequence([])
    ds.AcquisitionDateTime = ds.ContentDate + ds.ContentTime
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return ds


def _stamp(rgb: np.ndarray) -> np.ndarray:
    """The overlay with a black band saying NOT FOR DIAGNOSIS across its top."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    band = max(12, image.height // 20)
    draw.rectangle([0, 0, image.width, band], fill=(0, 0, 0))
    draw.text((4, max(0, band // 2 - 5)), "NOT FOR DIAGNOSIS", fill=(255, 255, 0))
    return np.asarray(image)


def build_gradcam(study: Dataset, case: Case) -> list[Dataset]:
    """One Secondary Capture per phase with a CAM: the overlay the PDF shows, stamped not for diagnosis."""
    import highdicom as hd
    from PIL import Image

    from nbrisk_core.report.figures import slice_png
    from nbrisk_core.report.pdf import burned_in_view

    cams = case.risk.cams if case.risk is not None else {}
    series_uid = hd.UID()
    images = []
    for phase, cam in cams.items():  # in acquisition order (RiskResult keys its CAMs by Phase)
        chosen = case.slices.get(phase)
        if chosen is None:
            continue
        plane, _ = burned_in_view(chosen)  # text-like marks outside the body blacked out, as in the PDF
        png = slice_png(plane, cam, is_hu=chosen.is_hu, max_side=512)
        rgb = _stamp(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
        number = len(images) + 1
        sc = hd.sc.SCImage(
            pixel_array=rgb,
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            patient_orientation=("L", "P"),  # an axial slice: rows run to the left, columns to the back
            study_instance_uid=str(study.StudyInstanceUID),
            series_instance_uid=series_uid,
            series_number=SERIES_NUMBERS["gradcam"],
            sop_instance_uid=hd.UID(),
            instance_number=number,
            manufacturer="NBRisk",
            patient_id=str(study.get("PatientID", "")),
            patient_name=study.get("PatientName", ""),
            patient_birth_date=study.get("PatientBirthDate") or None,
            patient_sex=study.get("PatientSex") or None,
            accession_number=study.get("AccessionNumber") or None,
            study_id=study.get("StudyID") or None,
            study_date=study.get("StudyDate") or None,
            study_time=study.get("StudyTime") or None,
            referring_physician_name=study.get("ReferringPhysicianName") or None,
        )
        sc.SeriesDescription = NOT_FOR_DIAGNOSIS
        sc.ImageComments = f"{NOT_FOR_DIAGNOSIS}; {phase.title} phase"
        sc.BurnedInAnnotation = "YES"
        images.append(sc)
    return images


#: relative and absolute tolerance (mL) between the recomputed mask's volume and the case's
SEG_VOLUME_RTOL, SEG_VOLUME_ATOL = 1e-3, 1e-3


def _seg_model(seg_model):
    """The segmentation network (``seg_model``: a loaded one, a path, or None for the shipped one)
    and None, or None and why there is none."""
    from pathlib import Path

    from nbrisk_core.errors import InputError
    from nbrisk_core.segment.model import load_seg_model, shipped_seg_model_path

    if seg_model is not None and not isinstance(seg_model, (str, Path)):
        return seg_model, None
    path = Path(seg_model) if seg_model is not None else shipped_seg_model_path()
    if not path.with_suffix(".json").is_file():
        return None, f"no segmentation model ({path.name} not installed)"
    try:
        return load_seg_model(path), None
    except InputError as error:
        return None, f"the segmentation model cannot be used ({error})"


def build_segs(archive, case: Case, study_uid: str, sources: Mapping[Phase, Dataset], *,
               seg_model=None) -> tuple[list[tuple[Phase, Dataset]], dict[str, str]]:
    """The DICOM SEG of each phase whose chosen slice has an automatic segmentation.

    ``sources`` are the chosen instances (:func:`chosen_instances`): their (0020,000E)
    SeriesInstanceUID names the archive's series of each phase. Returns ``([(phase, SEG)], {phase:
    why skipped})``; every phase of the case is in one of the two.

    Raises
    ------
    PacsError
        The archive fails while the series are retrieved (nothing is pushed then).
    """
    from nbrisk_core.errors import InputError
    from nbrisk_core.segment.dicom_seg import match_slices, segmentation_dataset, source_headers
    from nbrisk_core.segment.inference import PhaseVolume, segment_phases

    skipped: dict[str, str] = {}
    wanted: dict[Phase, object] = {}
    for phase, chosen in case.slices.items():
        summary = chosen.segmentation
        if summary is None:
            skipped[str(phase)] = "no segmentation in the case"
        elif summary.source != "automatic":
            skipped[str(phase)] = (f"the segmentation is a {summary.source} (its contour is not kept with "
                                   "the case)")
        elif not summary.found:
            skipped[str(phase)] = "the segmentation found no tumour"
        else:
            wanted[phase] = summary
    if not wanted:
        return [], skipped
    model, why = _seg_model(seg_model)
    if model is None:
        skipped.update({str(phase): why for phase in wanted})
        return [], skipped
    for phase, summary in list(wanted.items()):
        if summary.model_sha256 and summary.model_sha256 != model.sha256:
            skipped[str(phase)] = (f"segmented with model {summary.model_sha256[:12]}..., the installed one "
                                   f"is {model.sha256[:12]}...")
            del wanted[phase]
    if not wanted:
        return [], skipped

    # every chosen phase's series, as the Case page segmented them together (the phases' agreement
    # picks the tumour's component), read as the pull reads them (same de-identification key)
    from nbrisk_core.pacs.pull import load_pulled, pull_study

    deid = link_deidentifier(study_uid)
    series_uids = list(dict.fromkeys(str(ds.SeriesInstanceUID) for ds in sources.values()))
    pulled = pull_study(archive, study_uid, series_uids=series_uids)
    try:
        headers = source_headers(pulled.path, deid)  # the archive's original headers, by remapped UID
    except BaseException:
        pulled.discard()
        raise
    study = load_pulled(pulled, deid)  # deletes the files
    by_uid = {s.series_uid: s for s in study.series}
    volumes = {}
    for phase, chosen in case.slices.items():
        series = by_uid.get(str(chosen.series_uid or ""))
        if series is not None and series.is_hu and series.hu.ndim == 3:
            volumes[str(phase)] = PhaseVolume.from_series(series)
    results = segment_phases(model, volumes) if volumes else {}
    segs = []
    for phase, summary in wanted.items():
        result = results.get(str(phase))
        if result is None:
            skipped[str(phase)] = "its series could not be read back from the archive as CT"
            continue
        if not result.found:
            skipped[str(phase)] = "the segmentation of the archive's series found no tumour"
            continue
        same = (result.max_area_slice == summary.max_area_slice
                and abs(result.volume_ml - summary.volume_ml)
                <= SEG_VOLUME_ATOL + SEG_VOLUME_RTOL * abs(summary.volume_ml))
        if not same:
            skipped[str(phase)] = (f"the archive's series segments to {result.volume_ml:.2f} mL (max-area "
                                   f"slice {result.max_area_slice}), the case's segmentation measured "
                                   f"{summary.volume_ml:.2f} mL (slice {summary.max_area_slice}): not the "
                                   "images the case was segmented on")
            continue
        volume = volumes[str(phase)]
        if not headers.get(volume.series_uid):
            skipped[str(phase)] = "none of its retrieved instances is a DICOM CT file to reference"
            continue
        try:
            images = match_slices(headers[volume.series_uid], volume.z_mm, volume.series_uid)
        except InputError as error:
            skipped[str(phase)] = str(error)
            continue
        name = model.path.stem if getattr(model, "path", None) else "seg_demo"
        segs.append((phase, segmentation_dataset(images, result.mask, model_name=name,
                                                 model_sha256=model.sha256, phase=str(phase))))
    return segs, {str(p): skipped[str(p)] for p in case.slices if str(p) in skipped}


def push_case(engine, case_uid: str, username, archive, *, models_dir=None, seg_model=None) -> PushResult:
    """Store a saved case's SR, SEGs, PDF and Grad-CAM captures into its archive study; audited.

    Parameters
    ----------
    models_dir : path, optional
        Where the classifier's model cards are (the PDF shows the card of the case's model, as
        :func:`nbrisk_core.service.export_case`); default :func:`nbrisk_core.config.models_dir`.
    seg_model : LoadedSegModel or path, optional
        The segmentation network for the SEGs (:func:`build_segs`); default the shipped
        ``models/seg_demo``.

    Raises
    ------
    PacsError
        The case has no archive link (``no_link``), or the archive refused, is unreachable, or no
        longer holds the study or the chosen slices.
    CaseNotFoundError, CaseAccessError
        From the case store.
    """
    from nbrisk_core.config import models_dir as default_models_dir
    from nbrisk_core.report import find_model_card, render_export
    from nbrisk_core.service import open_case
    from nbrisk_core.store import audit

    case = open_case(engine, case_uid, username, record_open=False, operation="export")
    link = study_link(case)
    if link is None:
        raise PacsError(
            f"case {case_uid} keeps no link to an archive study (it was not pulled from a PACS, or the "
            "site does not keep the link: keep_study_link / NBRISK_PACS_KEEP_STUDY_LINK); nothing "
            "to push into",
            kind="no_link",
        )
    if case.risk is None:
        raise PacsError(f"case {case_uid} has no risk result to push; run the Risk page first", kind="input")
    study_uid = link["study_uid"]
    study = archive.study_attributes(study_uid)
    sources = chosen_instances(archive, case, study_uid)
    # the PDF the Saved cases page makes of this case (service.export_case), with its model card
    card = find_model_card(models_dir or default_models_dir(), case.risk.model_sha256)
    pdf = render_export(case, "pdf", model_card=card)
    objects = [("sr", build_sr(case, sources)), ("pdf", build_pdf(study, pdf))]
    objects += [("gradcam", sc) for sc in build_gradcam(study, case)]
    segs, seg_skipped = build_segs(archive, case, study_uid, sources, seg_model=seg_model)
    objects += [("seg", seg) for _, seg in segs]
    stored = archive.store([ds for _, ds in objects], study_uid)
    kinds = [kind for kind, _ in objects]
    result = PushResult(
        case_uid=case_uid,
        study_uid=study_uid,
        archive=archive.settings.name,
        stored=stored or [str(ds.SOPInstanceUID) for _, ds in objects],
        kinds=kinds,
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        seg_skipped=seg_skipped,
    )
    audit.record(
        engine,
        getattr(username, "username", username) or "-",
        "case_pushed",
        case_uid=case_uid,
        model_sha256=case.risk.model_sha256 or None,
        detail={
            "archive": archive.settings.name,
            "version": case.stored.version,
            "objects": {k: kinds.count(k) for k in dict.fromkeys(kinds)},
            "pdf_sha256": result.pdf_sha256,
            "seg_skipped": sorted(seg_skipped),
        },
    )
    return result


def read_report(sr: Dataset) -> dict:
    """What an NBRisk SR says.

    ``{"p_high_risk": {model: (value, sha256)}, "mlrs", "mlrs_percentile", "mlrs_group", "references"}``."""
    out: dict = {
        "p_high_risk": {},
        "mlrs": None,
        "mlrs_percentile": None,
        "mlrs_group": None,
        "references": [],
    }

    def walk(items, algorithm=None):
        for item in items or []:
            name = item.ConceptNameCodeSequence[0] if "ConceptNameCodeSequence" in item else None
            meaning = str(name.CodeValue) if name is not None else ""
            if item.ValueType == "CONTAINER":
                algo = _algorithm(item) or algorithm
                walk(item.get("ContentSequence"), algo)
            elif item.ValueType == "NUM" and name is not None and name.CodingSchemeDesignator == SCHEME:
                value = float(item.MeasuredValueSequence[0].NumericValue)
                if meaning == CONCEPTS["p_high_risk"][0]:
                    out["p_high_risk"][algorithm[0] if algorithm else "?"] = (
                        value,
                        algorithm[1] if algorithm else "",
                    )
                elif meaning == CONCEPTS["mlrs"][0]:
                    out["mlrs"] = value
                elif meaning == CONCEPTS["mlrs_percentile"][0]:
                    out["mlrs_percentile"] = value
            elif item.ValueType == "CODE" and meaning == CONCEPTS["mlrs_group"][0]:
                value = str(item.ConceptCodeSequence[0].CodeValue)
                out["mlrs_group"] = next(k for k in ("high", "low") if CONCEPTS[k][0] == value)
            elif item.ValueType == "IMAGE":
                ref = item.ReferencedSOPSequence[0]
                uid = str(ref.ReferencedSOPInstanceUID)
                if uid not in out["references"]:
                    out["references"].append(uid)
            if item.ValueType != "CONTAINER" and "ContentSequence" in item:
                walk(item.ContentSequence, algorithm)

    walk(sr.get("ContentSequence"))
    return out


def _algorithm(container: Dataset) -> tuple[str, str] | None:
    name = version = None
    for item in container.get("ContentSequence") or []:
        if "ConceptNameCodeSequence" not in item or item.ValueType != "TEXT":
            continue
        meaning = str(item.ConceptNameCodeSequence[0].CodeMeaning)
        if meaning == "Algorithm Name":
            name = str(item.TextValue)
        elif meaning == "Algorithm Version":
            version = str(item.TextValue)
    return (name, version or "") if name else None


__all__ = [
    "PushResult",
    "build_gradcam",
    "build_pdf",
    "build_segs",
    "build_sr",
    "chosen_instances",
    "push_case",
    "read_report",
    "study_link",
]
