"""De-identification of DICOM headers: PS3.15 Annex E, Basic Application Level Confidentiality Profile.

The profile's table (PS3.15 Table E.1-1, about 650 attributes with their action) is not typed here:
it comes from the ``dicom-anonymizer`` package (KitwareMedical, BSD-3, pinned in requirements.txt),
which ships Table E.1-1 per edition of the standard as tag lists; :data:`PROFILE_EDITION` names the
edition used. NBRisk keeps only a handful of header attributes from an upload (geometry, rescale,
phase and timing cues, age and sex), so de-identification is done in two layers:

1. :meth:`Deidentifier.kept_header` copies a *whitelist* (:data:`KEPT_ATTRIBUTES`) out of a dataset:
   no other attribute (names, IDs, addresses, institution, physicians, free text, private tags, ...)
   ever leaves the reader; dates are dropped and clock times become offsets between series;
2. :meth:`Deidentifier.deidentify_dataset` applies the whole table to a dataset, for any place that
   stores or passes on a DICOM header (and to test the table itself).

Both apply the same profile options (PS3.15 E.3), each chosen for what the pipeline needs:

* *Retain Patient Characteristics* (113108): (0010,0040) PatientSex, (0010,1010) PatientAge,
  (0010,1020) PatientSize, (0010,1030) PatientWeight are kept (the clinical model uses them);
* *Clean Descriptors* (113105): (0008,103E) SeriesDescription and (0018,1030) ProtocolName are
  replaced by the phase keywords they contain (``NC``, ``ART``, ``PV``), (0018,0010)
  ContrastBolusAgent by a fixed word, so phase assignment (:mod:`.phases`) still has its cues;
* *Retain Longitudinal Temporal Information with Modified Dates* (113107): dates are shifted by a
  whole number of days, secret per study; times of day are kept, so the order of and intervals
  between series (acquisition order, a phase cue) are exact, even across midnight.

UIDs are remapped consistently within a study (salted hash), private tags are removed, and every
other attribute of the table gets the profile's basic action (see :data:`ACTION_APPLIED`).
"""

from __future__ import annotations

import copy
import hashlib
import secrets
from datetime import date, datetime, timedelta

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from nbrisk_core.imaging.header import HEADER_RULES, HeaderValueError, header_text, header_value
from nbrisk_core.imaging.phases import description_keywords

#: The edition of PS3.15 Table E.1-1 used: a module of ``dicom-anonymizer``'s
#: ``dicom_anonymization_databases`` (the table of the 2026c edition of the standard).
PROFILE_EDITION = "dicomfields_2026c"
PROFILE_SOURCE = ("DICOM PS3.15 2026c, Table E.1-1 (Basic Profile column), as shipped by dicom-anonymizer "
                  f"({PROFILE_EDITION})")

#: ``dicom-anonymizer``'s tag lists and the Table E.1-1 action each one holds.
_LIST_ACTIONS: dict[str, str] = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}

#: What NBRisk does for each Table E.1-1 action. ``D`` dummy value, ``Z`` empty, ``X`` remove,
#: ``U`` remap UIDs. A combination lets the IOD decide (``D`` where the attribute is Type 1, ``Z``
#: where Type 2, ``X`` otherwise); in the CT and enhanced CT image IODs the attributes with a
#: combination are Type 3 (so ``X``) or Type 2 (``Z/D`` -> ``Z``), and the Type 1 date/time ones
#: (e.g. (0008,002A) AcquisitionDateTime in enhanced CT) are shifted by the dates option instead.
ACTION_APPLIED: dict[str, str] = {
    "D": "D", "Z": "Z", "X": "X", "U": "U", "Z/D": "Z", "X/Z": "X", "X/D": "X", "X/Z/D": "X", "X/Z/U*": "X",
}


def _load_profile() -> tuple[dict[BaseTag, str], tuple[tuple[int, int, int, int, str], ...]]:
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    lists = dicom_anonymization_database_selector(PROFILE_EDITION)
    exact: dict[BaseTag, str] = {}
    repeating: list[tuple[int, int, int, int, str]] = []
    for list_name, action in _LIST_ACTIONS.items():
        for entry in lists[list_name]:
            if len(entry) == 4:
                # a repeating group, e.g. (50xx,xxxx) curve data: (group, element, group mask, element mask)
                repeating.append((*entry, action))
            else:
                exact[Tag(*entry)] = action
    return exact, tuple(repeating)


#: PS3.15 Table E.1-1: tag -> action (``D``, ``Z``, ``X``, ``U`` or a combination such as ``X/Z/D``).
#: PROFILE_REPEATING: the table's repeating-group rows as ``(group, element, group_mask,
#: element_mask, action)``: a tag matches when ``tag.group & group_mask == group`` and likewise
#: for the element.
BASIC_PROFILE, PROFILE_REPEATING = _load_profile()

#: Attributes that a profile option keeps (``K``) or cleans (``C``) instead of the basic action.
OPTION_ACTIONS: dict[str, tuple[str, str]] = {
    "PatientSex": ("K", "Retain Patient Characteristics"),
    "PatientAge": ("K", "Retain Patient Characteristics"),
    "PatientSize": ("K", "Retain Patient Characteristics"),
    "PatientWeight": ("K", "Retain Patient Characteristics"),
    "SeriesDescription": ("C", "Clean Descriptors: only the phase keywords"),
    "ProtocolName": ("C", "Clean Descriptors: only the phase keywords"),
    "ContrastBolusAgent": ("C", "Clean Descriptors: a fixed word, so that 'contrast given' survives"),
}

#: Date and time attributes that the dates option does *not* shift: the age derived from them is
#: kept instead (Retain Patient Characteristics), the birth date itself is not needed.
NOT_SHIFTED: frozenset[str] = frozenset({"PatientBirthDate", "PatientBirthTime"})

#: (0008,0102) and (0008,0104) of the de-identification methods applied, PS3.16 CID 7050.
METHOD_CODES: tuple[tuple[str, str], ...] = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113105", "Clean Descriptors Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
)

#: UI attributes that name a kind of thing (SOP class, transfer syntax, coding scheme), not an
#: instance: never remapped.
_CLASS_UID_KEYWORDS: frozenset[str] = frozenset({
    "SOPClassUID", "MediaStorageSOPClassUID", "ReferencedSOPClassUID", "ReferencedSOPClassUIDInFile",
    "AffectedSOPClassUID", "RequestedSOPClassUID", "TransferSyntaxUID", "ReferencedTransferSyntaxUIDInFile",
    "ImplementationClassUID", "CodingSchemeUID", "RelatedGeneralSOPClassUID",
    "OriginalSpecializedSOPClassUID",
})

#: What NBRisk keeps from a header (everything else is dropped). Of these, only the ones that
#: :data:`OPTION_ACTIONS` covers are in the profile's table.
KEPT_ATTRIBUTES: tuple[str, ...] = (
    "Modality", "SOPClassUID", "ImageType", "BodyPartExamined", "KVP", "SliceThickness",
    "SpacingBetweenSlices", "PixelSpacing", "ImageOrientationPatient", "Rows", "Columns",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "ConvolutionKernel", "GantryDetectorTilt",
    "ContrastBolusAgent", "ContrastBolusRoute", "ContrastBolusVolume", "SeriesNumber",
    "PatientSex", "PatientAge", "PatientSize", "PatientWeight", "Manufacturer",
    "ManufacturerModelName",
)

#: The fixed value that replaces a filled (0018,0010) ContrastBolusAgent.
CONTRAST_AGENT_DUMMY = "CONTRAST"

_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
#: Dummy values (action ``D``) by VR, where the VR is not text, binary or UI.
_DUMMY_BY_VR: dict[str, object] = {
    "DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000D", "DS": "0", "IS": "0",
    "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0, "AT": 0,
}


def profile_action(tag) -> str | None:
    """The Table E.1-1 action for ``tag`` (``"X/Z/D"``, ...), or None when the table does not list it.

    >>> profile_action(0x00100010), profile_action(0x00080080), profile_action(0x50001234)
    ('Z', 'X/Z/D', 'X')
    """
    tag = Tag(tag)
    action = BASIC_PROFILE.get(tag)
    if action is not None:
        return action
    for group, element, group_mask, element_mask, repeating_action in PROFILE_REPEATING:
        if tag.group & group_mask == group and tag.element & element_mask == element:
            return repeating_action
    return None


def clean_descriptor(keyword: str, value) -> str | None:
    """The Clean Descriptors value of a kept descriptor, or None when nothing of it may stay.

    >>> clean_descriptor("SeriesDescription", "Dr Smith arterial 1.0 B30f")
    'ART'
    >>> clean_descriptor("ContrastBolusAgent", "Iohexol 300")
    'CONTRAST'
    """
    text = str(value or "").strip()
    if keyword == "ContrastBolusAgent":
        return CONTRAST_AGENT_DUMMY if text else None
    phases = description_keywords(text)
    return " ".join(phase.upper() for phase in phases) or None


class Deidentifier:
    """Per-study de-identification key: UIDs remapped and dates shifted consistently within one study.

    Parameters
    ----------
    salt : bytes, optional
        Secret mixed into the UID hash and the date shift; random per study unless given (tests pass
        a fixed one).

    Examples
    --------
    >>> key = Deidentifier(salt=b"k")
    >>> key.uid("1.2.3") == Deidentifier(salt=b"k").uid("1.2.3") != Deidentifier(salt=b"j").uid("1.2.3")
    True
    """

    def __init__(self, salt: bytes | None = None):
        self.salt = salt if salt is not None else secrets.token_bytes(16)
        digest = hashlib.sha256(self.salt + b"date-shift").digest()
        #: days every date of the study is moved back: 1 to 11 years, secret with the salt
        self.date_shift_days = 365 + int.from_bytes(digest[:4], "big") % 3653

    def uid(self, original: str | None) -> str:
        """Remap a UID (action ``U``): a ``2.25.`` UID derived from a salted hash, stable in one study."""
        if not original:
            return ""
        digest = hashlib.sha256(self.salt + str(original).encode()).digest()[:16]
        return "2.25." + str(int.from_bytes(digest, "big"))

    def shift_date(self, value) -> str | None:
        """A DICOM DA (``YYYYMMDD``) moved back by :attr:`date_shift_days`, or None if not a full date."""
        text = str(value or "").strip()
        if len(text) != 8 or not text.isdigit():
            return None
        try:
            shifted = datetime.strptime(text, "%Y%m%d").date() - timedelta(days=self.date_shift_days)
        except (ValueError, OverflowError):
            return None
        return _da(shifted)

    def shift_datetime(self, value) -> str | None:
        """A DICOM DT with its date part shifted (time of day, fraction and UTC offset kept), or None."""
        text = str(value or "").strip()
        shifted = self.shift_date(text[:8])
        return None if shifted is None else shifted + text[8:]

    def shift_temporal(self, vr: str, value) -> str | None:
        """A DA, DT or TM value under the Modified Dates option, or None if it cannot be shifted.

        Dates move back by whole days; a TM is kept as it is (a whole-day shift leaves the time of
        day unchanged), so series keep their order and intervals.
        """
        if vr == "DA":
            return self.shift_date(value)
        if vr == "DT":
            return self.shift_datetime(value)
        return str(value).strip() if seconds_of_day(value) is not None else None

    def kept_header(self, ds: Dataset, notes: list[str] | None = None) -> dict:
        """The whitelisted header values of ``ds`` as plain Python values, with age derived.

        ``PatientAge`` (0010,1010) is kept under the Retain Patient Characteristics option; when it is
        missing it is derived from (0010,0030) PatientBirthDate and (0008,0020) StudyDate, and both
        dates are then dropped. Descriptors are cleaned as in :meth:`deidentify_dataset`. Numbers
        are read with :func:`~nbrisk_core.imaging.header.header_value`: a malformed one is left out
        and described in ``notes`` (when given), so no consumer of the header meets a bad value.
        """
        header: dict = {}
        for keyword in KEPT_ATTRIBUTES:
            if keyword in HEADER_RULES:
                try:
                    value = header_value(ds, keyword)
                except HeaderValueError as error:
                    if notes is not None:
                        notes.append(f"{error}; ignored")
                    continue
                if value is not None:
                    header[keyword] = list(value) if isinstance(value, tuple) else value
                continue
            try:
                value = ds.get(keyword)
            except Exception:  # noqa: BLE001 - an unreadable descriptor is treated as absent
                continue
            if value is None or value == "":
                continue
            if OPTION_ACTIONS.get(keyword, ("K", ""))[0] == "C":
                value = clean_descriptor(keyword, value)
                if value is None:
                    continue
            value = _plain(value)
            if isinstance(value, list) and _single_valued(keyword):
                value = "\\".join(str(v) for v in value)  # a malformed multi-value is kept as one text
            header[keyword] = value
        if "PatientAge" not in header:
            age = age_from_dates(header_text(ds, "PatientBirthDate"), header_text(ds, "StudyDate"))
            if age is not None:
                header["PatientAge"] = age
        return header

    def deidentify_dataset(self, ds: Dataset) -> Dataset:
        """Apply PS3.15 Table E.1-1 (:data:`BASIC_PROFILE`) with NBRisk's options to a copy of ``ds``.

        Private tags go; sequences are walked recursively, so a name inside a sequence item is
        handled as well; instance UIDs the table does not name are remapped too. The result records
        what was done: (0012,0062) PatientIdentityRemoved, (0012,0063) DeidentificationMethod,
        (0012,0064) DeidentificationMethodCodeSequence and (0028,0303)
        LongitudinalTemporalInformationModified.
        """
        # a deep copy: elements are changed in place below and must not touch the caller's dataset
        out = copy.deepcopy(ds)
        age = None
        if not out.get("PatientAge"):
            age = age_from_dates(out.get("PatientBirthDate"), out.get("StudyDate"))
        self._apply(out)
        if getattr(out, "file_meta", None) is not None:
            self._apply(out.file_meta)
        if age is not None:
            out.PatientAge = age
        out.PatientIdentityRemoved = "YES"
        out.LongitudinalTemporalInformationModified = "MODIFIED"
        out.DeidentificationMethod = [f"PS3.15 Basic Profile, Table E.1-1 {PROFILE_EDITION[-5:]}",
                                      "Clean Descriptors", "Retain Patient Characteristics",
                                      "Retain Longitudinal Modified Dates"]
        out.DeidentificationMethodCodeSequence = Sequence([_code(*method) for method in METHOD_CODES])
        return out

    def _apply(self, ds: Dataset) -> None:
        ds.remove_private_tags()
        for element in list(ds):
            self._apply_element(ds, element)

    def _apply_element(self, ds: Dataset, element: DataElement) -> None:
        keyword = element.keyword
        option = OPTION_ACTIONS.get(keyword)
        if option is not None:
            if option[0] == "K":
                return
            cleaned = clean_descriptor(keyword, element.value)
            if cleaned is not None:
                element.value = cleaned
                return
        vr = str(element.VR).split(" or ")[0]
        action = profile_action(element.tag)
        if action is None:
            if vr == "SQ":
                for item in element.value or []:
                    self._apply(item)
            elif vr == "UI" and keyword not in _CLASS_UID_KEYWORDS:
                # an instance UID the table does not name (registered UIDs name classes, not instances)
                element.value = self._remap(element.value, registered_kept=True)
            return
        if vr in ("DA", "DT", "TM") and keyword not in NOT_SHIFTED:
            shifted = _map_values(element.value, lambda text: self.shift_temporal(vr, text))
            if shifted is not None:
                element.value = shifted
                return
        applied = ACTION_APPLIED[action]
        if applied == "X":
            del ds[element.tag]
        elif applied == "Z":
            element.value = _empty(vr)
        elif vr == "UI":  # U, or D on a UID: a consistent replacement UID
            element.value = self._remap(element.value, registered_kept=False)
        else:
            element.value = _dummy(vr)

    def _remap(self, value, registered_kept: bool):
        def one(uid: str) -> str:
            if not uid or (registered_kept and UID(uid).type):
                return uid
            return self.uid(uid)

        return _map_values(value, one)


def _map_values(value, function):
    """``function`` over a single or multi-valued element value; None if it fails on any value."""
    if isinstance(value, bytes):
        return None
    if value is None or isinstance(value, str):
        return function(str(value or ""))
    results = [function(str(v)) for v in value]
    return None if any(r is None for r in results) else results


def _empty(vr: str):
    if vr == "SQ":
        return Sequence()
    if vr in _TEXT_VRS or vr in ("DA", "TM", "DT", "AS", "DS", "IS", "UI"):
        return ""
    return None


def _dummy(vr: str):
    if vr == "SQ":
        # one empty item: the sequence is there (Type 1), nothing of its content is
        return Sequence([Dataset()])
    if vr in _TEXT_VRS:
        return "ANONYMIZED"
    if vr in _BINARY_VRS:
        return b"\x00\x00"
    return _DUMMY_BY_VR.get(vr, b"\x00\x00")


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def _da(day: date) -> str:
    # strftime does not zero-pad years below 1000 on every platform
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _single_valued(keyword: str) -> bool:
    from pydicom.datadict import dictionary_VM, tag_for_keyword

    return dictionary_VM(tag_for_keyword(keyword)) == "1"


def _plain(value):
    """A pydicom value as a JSON-friendly Python value (MultiValue -> list, DSfloat -> float)."""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def age_from_dates(birth_date, study_date) -> str | None:
    """DICOM age string (``nnnM`` below 8 years, else ``nnnY``) from two ``YYYYMMDD`` dates, or None."""
    try:
        born = datetime.strptime(str(birth_date), "%Y%m%d").date()
        seen = datetime.strptime(str(study_date), "%Y%m%d").date()
    except (TypeError, ValueError):
        return None
    months = (seen.year - born.year) * 12 + seen.month - born.month - (seen.day < born.day)
    if months < 0:
        return None
    return f"{months:03d}M" if months < 96 else f"{months // 12:03d}Y"


def age_months(age: str | None) -> float | None:
    """Months from a DICOM Age String (0010,1010): ``nnnD``, ``nnnW``, ``nnnM`` or ``nnnY``."""
    if not age or len(str(age)) != 4 or not str(age)[:3].isdigit():
        return None
    n, unit = int(str(age)[:3]), str(age)[3].upper()
    factor = {"D": 12 / 365.25, "W": 12 / 52.1775, "M": 1.0, "Y": 12.0}.get(unit)
    return None if factor is None else n * factor


def seconds_of_day(value) -> float | None:
    """Seconds since midnight from a DICOM TM (``HHMMSS.FFFFFF``), or None if absent/invalid."""
    text = str(value or "").strip()
    if len(text) < 2 or not text[:2].isdigit():
        return None
    try:
        hours = int(text[0:2])
        minutes = int(text[2:4]) if len(text) >= 4 else 0
        seconds = float(text[4:]) if len(text) > 4 else 0.0
    except ValueError:
        return None
    return hours * 3600 + minutes * 60 + seconds


__all__ = ["ACTION_APPLIED", "BASIC_PROFILE", "KEPT_ATTRIBUTES", "OPTION_ACTIONS", "PROFILE_EDITION",
           "PROFILE_REPEATING", "Deidentifier", "age_from_dates", "age_months", "clean_descriptor",
           "profile_action", "seconds_of_day"]
