"""The typed case: what every stage produces and consumes, from the Case page to the store and the report.

A case flows one way, as frozen objects (no dicts to guess fields from):

- the Case page (:mod:`nbrisk_core.imaging.case`) chooses one :class:`ChosenSlice` per :class:`Phase`
  and summarises the study (age, sex, series per phase, no identifiers);
- the Risk page (:func:`nbrisk_core.service.score_case`) makes a :class:`RiskResult`;
- the Prognosis page (:func:`nbrisk_core.service.prognose_case`) makes a :class:`Prognosis`;
- :class:`Case` holds them, with the label, status and notes; the store saves and loads it
  (:mod:`nbrisk_core.store.session`) and the report renders it (:mod:`nbrisk_core.report`).

This module depends on nothing else in NBRisk, so every stage may import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np


class Phase(StrEnum):
    """A phase of a multiphase contrast CT study, spelled one way everywhere (the database included)."""

    NC = "nc"
    ART = "art"
    PV = "pv"

    @property
    def title(self) -> str:
        """What a clinician reads, e.g. "Arterial (ART)"."""
        return PHASE_TITLES[self]


#: the phases in acquisition order
PHASES: tuple[Phase, ...] = tuple(Phase)
PHASE_TITLES: dict[Phase, str] = {Phase.NC: "Non-contrast (NC)", Phase.ART: "Arterial (ART)",
                                  Phase.PV: "Portal venous (PV)"}
#: the classifier's classes: high risk and non-high risk
RISK_CLASSES: tuple[str, ...] = ("HR", "NHR")


def by_phase(mapping: Mapping) -> dict[Phase, Any]:
    """``mapping`` with :class:`Phase` keys in acquisition order (a key that is no phase is an error)."""
    out = {}
    for key, value in mapping.items():
        try:
            out[Phase(key)] = value
        except ValueError:
            raise ValueError(f"phase = {key!r} is not known (expected one of {', '.join(PHASES)})") from None
    return {p: out[p] for p in PHASES if p in out}


@dataclass(frozen=True)
class SegmentationSummary:
    """The tumour as a phase's segmentation measured it (issue 21): stored with the chosen slice.

    Attributes
    ----------
    volume_ml : float
        Tumour volume: mask voxels x pixel area x slice spacing.
    longest_diameter_mm : float
        Longest axial diameter on the max-area slice (largest distance between two mask pixel centres).
    area_mm2 : float
        Tumour area on the max-area slice ((0028,0030) PixelSpacing).
    max_area_slice : int
        0-based index, ascending z, of the slice with the largest area.
    confidence : float or None
        The automatic segmentation's confidence in [0, 1] (None for a seed click).
    found : bool
        False when the segmentation found no tumour (the measurements are then 0).
    source : {"automatic", "seed click"}
        The MONAI network's proposal, or the seeded contour that replaced it.
    model_sha256 : str or None
        SHA-256 of the segmentation model (automatic only).
    """

    volume_ml: float
    longest_diameter_mm: float
    area_mm2: float
    max_area_slice: int
    confidence: float | None = None
    found: bool = True
    source: str = "automatic"
    model_sha256: str | None = None

    def __post_init__(self):
        if self.source not in SEGMENTATION_SOURCES:
            raise ValueError(f"segmentation source = {self.source!r} is not known "
                             f"(expected one of {', '.join(SEGMENTATION_SOURCES)})")
        for name in ("volume_ml", "longest_diameter_mm", "area_mm2"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "max_area_slice", int(self.max_area_slice))
        if self.confidence is not None:
            object.__setattr__(self, "confidence", float(self.confidence))

    def describe(self) -> str:
        """One line for a reader (the PDF, the reopened case).

        >>> SegmentationSummary(41.25, 52.0, 980.0, 21, confidence=0.93).describe()
        'volume 41.2 mL, longest diameter 52.0 mm, area 980 mm² on slice 21 (automatic, confidence 0.93)'
        """
        if not self.found:
            return f"no tumour found ({self.source})"
        confidence = f", confidence {self.confidence:.2f}" if self.confidence is not None else ""
        return (f"volume {self.volume_ml:.1f} mL, longest diameter {self.longest_diameter_mm:.1f} mm, "
                f"area {self.area_mm2:.0f} mm² on slice {self.max_area_slice} ({self.source}{confidence})")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the store's slice metadata and the CSV/JSON export)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SegmentationSummary:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


#: where a :class:`SegmentationSummary` comes from
SEGMENTATION_SOURCES: tuple[str, ...] = ("automatic", "seed click")


@dataclass(frozen=True)
class ChosenSlice:
    """The slice chosen in one phase (the max-area slice), as the Case page confirmed it.

    Attributes
    ----------
    phase : Phase
    index : int or None
        0-based index in the phase's series sorted by ascending z (None for a 2-D image upload).
    z_mm : float or None
        z position in mm: (0020,1041) SliceLocation or the z of (0020,0032) ImagePositionPatient.
    hu : ndarray or None
        int16 2-D Hounsfield units (a DICOM series).
    grey : ndarray or None
        uint8 2-D image instead of ``hu`` (a 2-D BMP/PNG upload: no Hounsfield units).
    pixel_spacing : (float, float) or None
        (row, column) in mm, (0028,0030) PixelSpacing.
    series_uid : str or None
        The series' remapped UID (never the original).
    burned_in : dict
        The burned-in annotation finding (:mod:`nbrisk_core.imaging.burned_in`) and, once cleared
        for storage, the reviewer's decision.
    window : dict or None
        ``{"name", "width", "level"}`` the slice was confirmed with in the viewer.
    series_hu : ndarray or None
        The phase's whole series (3-D), kept only to be stored when the user asks for it.
    segmentation : SegmentationSummary or None
        The tumour's volume, longest diameter and area from the phase's segmentation (None: none was
        made, or a case saved before NBRisk measured them).
    """

    phase: Phase
    index: int | None = None
    z_mm: float | None = None
    hu: np.ndarray | None = None
    grey: np.ndarray | None = None
    pixel_spacing: tuple[float, float] | None = None
    series_uid: str | None = None
    burned_in: Mapping = field(default_factory=dict)
    window: Mapping | None = None
    series_hu: np.ndarray | None = None
    segmentation: SegmentationSummary | None = None

    def __post_init__(self):
        object.__setattr__(self, "phase", Phase(self.phase))
        if self.pixel_spacing is not None:
            object.__setattr__(self, "pixel_spacing", tuple(float(v) for v in self.pixel_spacing))
        if (self.hu is None) == (self.grey is None):
            raise ValueError(f"{self.phase.upper()} chosen slice: expected either HU or a grey image")

    @property
    def is_hu(self) -> bool:
        return self.hu is not None

    @property
    def plane(self) -> np.ndarray:
        """The 2-D slice: Hounsfield units, or the 8-bit grey image of a 2-D upload."""
        return self.hu if self.hu is not None else self.grey

    def replace(self, **changes) -> ChosenSlice:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class VariantScore:
    """One classifier variant's output for a case (Swin-NC, -ART, -PV or -MP)."""

    variant: str
    label: str
    p_high_risk: float
    risk_class: str
    threshold: float
    model_sha256: str


@dataclass(frozen=True)
class RiskResult:
    """The classifier's result for a case.

    Attributes
    ----------
    scores : mapping variant -> VariantScore
        Every variant that could score the case; ``reference`` (Swin-ART) among them.
    embedding : ndarray
        The reference model's 16-value CT embedding (the prognosis models' CT features).
    cams : mapping Phase -> ndarray
        The CAM heat map per phase in [0, 1] (model-input resolution), as the page showed it.
    reference : str
        The variant whose probability and class are the case's (``"art"``).
    device : str
        Where it ran (e.g. ``"cpu (fp32)"``).
    seconds : float
        Time of the reference model's prediction.
    """

    scores: Mapping[str, VariantScore]
    embedding: np.ndarray
    cams: Mapping[Phase, np.ndarray] = field(default_factory=dict)
    reference: str = "art"
    device: str = ""
    seconds: float = 0.0

    def __post_init__(self):
        if self.reference not in self.scores:
            raise ValueError(f"risk result: reference variant {self.reference!r} has no score "
                             f"(scored: {', '.join(self.scores) or 'none'})")
        object.__setattr__(self, "cams", by_phase(self.cams))

    @property
    def score(self) -> VariantScore:
        return self.scores[self.reference]

    @property
    def p_high_risk(self) -> float:
        return self.score.p_high_risk

    @property
    def risk_class(self) -> str:
        return self.score.risk_class

    @property
    def model_sha256(self) -> str:
        return self.score.model_sha256

    def with_cam(self, phase: Phase | str, heatmap: np.ndarray) -> RiskResult:
        return dataclasses.replace(self, cams={**self.cams, Phase(phase): np.asarray(heatmap)})


@dataclass(frozen=True)
class Prognosis:
    """Predicted overall survival of the patient (the selected model of the prognosis grid).

    Attributes
    ----------
    times, survival : ndarray
        S(t) at ``times`` (days); ``low``/``high`` a band where the model gives one.
    mlrs, percentile, group, cutoff
        Machine-learning risk score, its percentile in the training cohort (0-100), ``"high"`` or
        ``"low"`` against the frozen training-median ``cutoff``.
    model : str
        The selected combination (e.g. ``"StepCox[backward] + RSF"``).
    imputed : tuple of str
        Clinical variables that were missing and imputed (MICE-PMM); ``imputed_values`` holds
        what was filled in, in the schema's canonical unit.
    notes : tuple of str
    pipeline_sha256 : str or None
        SHA-256 of the fitted pipeline.
    reference_curves : mapping label -> (times, survival)
        Kaplan-Meier curves of the training cohort by MLRS group, as the page draws them.
    embedding_source : str
        Where the CT features came from (``"risk page"`` or ``"demo patient P0001"``).
    prediction_ms : float or None
    synthetic : bool or None
        Whether the cohort the model was fitted on is synthetic (None: not known).
    """

    times: np.ndarray
    survival: np.ndarray
    mlrs: float
    percentile: float
    group: str
    cutoff: float
    model: str
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    imputed: tuple[str, ...] = ()
    imputed_values: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    pipeline_sha256: str | None = None
    reference_curves: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    embedding_source: str = ""
    prediction_ms: float | None = None
    synthetic: bool | None = None

    def __post_init__(self):
        object.__setattr__(self, "imputed", tuple(self.imputed))
        object.__setattr__(self, "notes", tuple(self.notes))


@dataclass(frozen=True)
class PredictionInfo:
    """Provenance of one stored prediction (the store keeps every one a case ever had)."""

    kind: str
    model_name: str | None
    model_sha256: str | None
    input_sha256: str
    created_at: datetime | None = None
    created_by: str | None = None
    software_versions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredInfo:
    """Where a stored case stands: id, version, who did what when."""

    case_uid: str
    version: int
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    reviewed_at: datetime | None = None
    reviewed_by: str | None = None
    signed_off_at: datetime | None = None
    signed_off_by: str | None = None
    owner: str | None = None
    software_versions: Mapping[str, str] = field(default_factory=dict)
    predictions: tuple[PredictionInfo, ...] = ()


@dataclass(frozen=True)
class Case:
    """One patient's case as every stage sees it.

    Attributes
    ----------
    label : str
        Pseudonymous label (a study number, never a name).
    slices : mapping Phase -> ChosenSlice
    study : mapping
        The de-identified study summary of the Case page (``age``, ``age_months``, ``sex``,
        ``phases``: series geometry per phase; :func:`nbrisk_core.imaging.case.case_meta`).
    risk : RiskResult or None
    clinical : mapping
        Clinical values as entered (validated; numbers may be ``{"value", "unit"}``).
    prognosis : Prognosis or None
    status : {"draft", "reviewed", "signed_off"}
    notes : str
    stored : StoredInfo or None
        Set for a case loaded from the store.
    """

    label: str = ""
    slices: Mapping[Phase, ChosenSlice] = field(default_factory=dict)
    study: Mapping[str, Any] = field(default_factory=dict)
    risk: RiskResult | None = None
    clinical: Mapping[str, Any] = field(default_factory=dict)
    prognosis: Prognosis | None = None
    status: str = "draft"
    notes: str = ""
    stored: StoredInfo | None = None

    def __post_init__(self):
        object.__setattr__(self, "slices", by_phase(self.slices))
        for phase, chosen in self.slices.items():
            if chosen.phase != phase:
                raise ValueError(f"chosen slice of phase {chosen.phase} stored under {phase}")

    @property
    def age_months(self) -> float | None:
        """Age as entered on the Prognosis page (in months), else from the study's header."""
        from nbrisk_core.clinical.schema import canonical_number

        entered = canonical_number("age_months", self.clinical.get("age_months"))
        return entered if entered is not None else _finite(self.study.get("age_months"))

    @property
    def sex(self) -> str | None:
        for value in (self.clinical.get("sex"), self.study.get("sex")):
            if value in ("F", "M"):
                return value
        return None

    @property
    def imputed(self) -> dict[str, Any]:
        """Imputed clinical variable -> imputed value (None when it was not stored), entered ones left out."""
        if self.prognosis is None:
            return {}
        return {name: self.prognosis.imputed_values.get(name) for name in self.prognosis.imputed
                if _missing(self.clinical.get(name))}

    def replace(self, **changes) -> Case:
        return dataclasses.replace(self, **changes)


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _missing(value) -> bool:
    if isinstance(value, Mapping):
        value = value.get("value")
    return value is None or (isinstance(value, float) and not np.isfinite(value))
