"""What a search asks and finds, the same over DICOMweb and DIMSE: matching keys and study/series hits.

:mod:`nbrisk_core.pacs.archive` (QIDO-RS) and :mod:`nbrisk_core.pacs.dimse` (C-FIND) both build their
queries with :func:`study_filters` and read the answers with :func:`study_hit` / :func:`series_hit`;
keeping these here lets each route import them without importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from nbrisk_core.pacs.errors import PacsError

#: the fields asked of QIDO-RS for a study hit (beyond the required return keys)
STUDY_FIELDS = (
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "AccessionNumber",
    "StudyDescription",
)
SERIES_FIELDS = ("Modality", "SeriesDescription", "SeriesNumber", "NumberOfSeriesRelatedInstances")


@dataclass(frozen=True)
class StudyHit:
    """One study found in the archive (shown to the user, never stored)."""

    study_uid: str
    patient_id: str
    study_date: str
    modalities: list[str] = field(default_factory=list)
    n_series: int | None = None
    n_instances: int | None = None
    accession: str = ""
    description: str = ""

    def to_json(self) -> dict:
        """The keys ``nbrisk pacs find --json`` prints."""
        return {
            "study_uid": self.study_uid,
            "patient_id": self.patient_id,
            "study_date": self.study_date,
            "modalities": list(self.modalities),
            "n_series": self.n_series,
            "n_instances": self.n_instances,
        }


@dataclass(frozen=True)
class SeriesHit:
    """One series of a study in the archive."""

    series_uid: str
    modality: str
    description: str = ""
    number: int | None = None
    n_instances: int | None = None


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") and not isinstance(value, str):
        return "\\".join(str(v) for v in value)
    return str(value)


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _modalities(ds: Dataset) -> list[str]:
    value = ds.get("ModalitiesInStudy")
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v for v in value.split("\\") if v]
    return [str(v) for v in value]


def study_hit(ds: Dataset) -> StudyHit:
    return StudyHit(
        study_uid=_text(ds, "StudyInstanceUID"),
        patient_id=_text(ds, "PatientID"),
        study_date=_text(ds, "StudyDate"),
        modalities=_modalities(ds),
        n_series=_int(ds, "NumberOfStudyRelatedSeries"),
        n_instances=_int(ds, "NumberOfStudyRelatedInstances"),
        accession=_text(ds, "AccessionNumber"),
        description=_text(ds, "StudyDescription"),
    )


def series_hit(ds: Dataset) -> SeriesHit:
    return SeriesHit(
        series_uid=_text(ds, "SeriesInstanceUID"),
        modality=_text(ds, "Modality"),
        description=_text(ds, "SeriesDescription"),
        number=_int(ds, "SeriesNumber"),
        n_instances=_int(ds, "NumberOfSeriesRelatedInstances"),
    )


def study_filters(
    patient_id: str | None = None,
    accession: str | None = None,
    study_date: str | None = None,
    modality: str | None = "CT",
) -> dict[str, str]:
    """QIDO-RS / C-FIND matching keys; a study date is ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD``."""
    import re

    filters = {}
    if patient_id:
        filters["PatientID"] = str(patient_id).strip()
    if accession:
        filters["AccessionNumber"] = str(accession).strip()
    if study_date:
        text = (
            str(study_date).strip().replace("-", "", 2)
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(study_date))
            else str(study_date).strip()
        )
        if not re.fullmatch(r"\d{8}|\d{8}-|-\d{8}|\d{8}-\d{8}", text):
            raise PacsError(
                f"study date = {study_date!r}; expected YYYYMMDD, YYYY-MM-DD or a range YYYYMMDD-YYYYMMDD",
                kind="input",
            )
        filters["StudyDate"] = text
    if modality:
        filters["ModalitiesInStudy"] = str(modality).strip().upper()
    return filters


__all__ = [
    "SERIES_FIELDS",
    "STUDY_FIELDS",
    "SeriesHit",
    "StudyHit",
    "series_hit",
    "study_filters",
    "study_hit",
]
