"""De-identification of DICOM headers: PS3.15 Annex E, Basic Application Level Confidentiality Profile.

NBRisk keeps only a handful of header attributes from an upload (geometry, rescale, phase and
timing cues, age and sex), so de-identification is done in two layers:

1. :func:`kept_header` copies a *whitelist* (:data:`KEPT_ATTRIBUTES`) out of a dataset: no other
   attribute (names, IDs, addresses, institution, physicians, free text, private tags, ...) ever
   leaves the reader;
2. on those, the profile's actions are applied: UIDs remapped (``U``), dates removed, times made
   relative, with the profile's *Retain Patient Characteristics* option (age, sex, size, weight) and
   *Retain Longitudinal Temporal Information with Modified Dates* option (we keep only time offsets
   between series, needed for phase assignment).

:func:`deidentify_dataset` applies the profile table (:data:`BASIC_PROFILE`) to a whole dataset,
for the few places that store a DICOM header (and to test the table itself).
"""

from __future__ import annotations

import copy
import hashlib
import secrets
from datetime import datetime

from pydicom.dataset import Dataset

#: PS3.15 Table E.1-1 attributes and the Basic Profile action NBRisk applies:
#: ``X`` remove, ``Z`` empty, ``D`` dummy value, ``U`` remap UID. The table lists the attributes
#: of the profile that occur in CT and secondary-capture objects (the profile's full table also
#: names attributes of other IODs, which the whitelist in :func:`kept_header` drops anyway).
BASIC_PROFILE: dict[str, str] = {
    # patient
    "PatientName": "Z", "PatientID": "Z", "PatientBirthDate": "Z", "PatientBirthTime": "X",
    "PatientSex": "Z", "OtherPatientIDs": "X", "OtherPatientNames": "X", "OtherPatientIDsSequence": "X",
    "PatientBirthName": "X", "PatientAddress": "X", "PatientMotherBirthName": "X",
    "PatientTelephoneNumbers": "X", "PatientReligiousPreference": "X", "EthnicGroup": "X",
    "Occupation": "X", "MilitaryRank": "X", "BranchOfService": "X", "MedicalRecordLocator": "X",
    "PatientComments": "X", "AdditionalPatientHistory": "X", "PatientInsurancePlanCodeSequence": "X",
    "PatientState": "X", "PregnancyStatus": "X", "SmokingStatus": "X", "MedicalAlerts": "X",
    "Allergies": "X", "CountryOfResidence": "X", "RegionOfResidence": "X", "IssuerOfPatientID": "X",
    "PatientAge": "X", "PatientSize": "X", "PatientWeight": "X", "ResponsiblePerson": "X",
    "ResponsibleOrganization": "X", "PatientBreedDescription": "X", "PatientSpeciesDescription": "X",
    # study / visit
    "StudyInstanceUID": "U", "StudyDate": "Z", "StudyTime": "Z", "StudyID": "Z", "AccessionNumber": "Z",
    "StudyDescription": "X", "ReferringPhysicianName": "Z", "ReferringPhysicianAddress": "X",
    "ReferringPhysicianTelephoneNumbers": "X", "PhysiciansOfRecord": "X", "NameOfPhysiciansReadingStudy": "X",
    "RequestingPhysician": "X", "AdmittingDiagnosesDescription": "X", "AdmissionID": "X",
    "ReasonForStudy": "X", "RequestedProcedureDescription": "X", "RequestedProcedureID": "X",
    "StudyComments": "X", "InterpretationAuthor": "X", "CurrentPatientLocation": "X",
    "PatientInstitutionResidence": "X", "ServiceEpisodeID": "X", "ServiceEpisodeDescription": "X",
    "IssuerOfAdmissionIDSequence": "X",
    # series / equipment / acquisition
    "SeriesInstanceUID": "U", "SOPInstanceUID": "U", "FrameOfReferenceUID": "U",
    "MediaStorageSOPInstanceUID": "U", "ReferencedSOPInstanceUID": "U",
    "SynchronizationFrameOfReferenceUID": "U", "IrradiationEventUID": "U", "InstanceCreatorUID": "U",
    "SeriesDate": "X", "SeriesTime": "X", "AcquisitionDate": "X", "AcquisitionTime": "X",
    "AcquisitionDateTime": "X", "ContentDate": "Z", "ContentTime": "Z", "InstanceCreationDate": "X",
    "InstanceCreationTime": "X", "OverlayDate": "X", "OverlayTime": "X", "CurveDate": "X",
    "CurveTime": "X", "ContrastBolusStartTime": "X", "ContrastBolusStopTime": "X",
    "InstitutionName": "X", "InstitutionAddress": "X", "InstitutionalDepartmentName": "X",
    "StationName": "X", "DeviceSerialNumber": "X", "OperatorsName": "X", "PerformingPhysicianName": "X",
    "PerformedProcedureStepID": "X", "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepStartDate": "X", "PerformedProcedureStepStartTime": "X",
    "PerformedProcedureStepEndDate": "X", "PerformedProcedureStepEndTime": "X",
    "PerformedLocation": "X", "PerformedStationName": "X", "ScheduledProcedureStepID": "X",
    "ScheduledProcedureStepDescription": "X", "RequestAttributesSequence": "X",
    "ReferencedPatientSequence": "X", "ReferencedStudySequence": "X",
    "ReferencedPerformedProcedureStepSequence": "X", "ProtocolName": "D", "ImageComments": "X",
    "DerivationDescription": "X", "SeriesDescription": "X", "AcquisitionComments": "X",
    "TextComments": "X", "TextString": "X", "FillerOrderNumberImagingServiceRequest": "X",
    "PlacerOrderNumberImagingServiceRequest": "X", "OrderEntererLocation": "X",
    "OrderCallbackPhoneNumber": "X", "DetectorID": "X", "GantryID": "X", "UID": "U",
    "ContentCreatorName": "Z", "VerifyingObserverName": "D", "PersonName": "D",
    "DigitalSignaturesSequence": "X", "DataSetTrailingPadding": "X",
}

#: What NBRisk keeps from a header (everything else is dropped). ``SeriesDescription`` and
#: ``ProtocolName`` are in the profile's table (free text may name people), but phase assignment
#: needs them; they are kept only as the phase keyword they contain (see
#: :func:`nbrisk_core.imaging.phases.description_keywords`), never as text.
KEPT_ATTRIBUTES: tuple[str, ...] = (
    "Modality", "SOPClassUID", "ImageType", "BodyPartExamined", "KVP", "SliceThickness",
    "SpacingBetweenSlices", "PixelSpacing", "ImageOrientationPatient", "Rows", "Columns",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "ConvolutionKernel", "GantryDetectorTilt",
    "ContrastBolusAgent", "ContrastBolusRoute", "ContrastBolusVolume", "SeriesNumber",
    "PatientSex", "PatientAge", "PatientSize", "PatientWeight", "Manufacturer",
    "ManufacturerModelName",
)

class Deidentifier:
    """Per-study de-identification key: UIDs remapped consistently within one study.

    Parameters
    ----------
    salt : bytes, optional
        Secret mixed into the UID hash; random per study unless given (tests pass a fixed one).
    """

    def __init__(self, salt: bytes | None = None):
        self.salt = salt if salt is not None else secrets.token_bytes(16)

    def uid(self, original: str | None) -> str:
        """Remap a UID (action ``U``): a ``2.25.`` UID derived from a salted hash, stable in one study."""
        if not original:
            return ""
        digest = hashlib.sha256(self.salt + str(original).encode()).digest()[:16]
        return "2.25." + str(int.from_bytes(digest, "big"))

    def kept_header(self, ds: Dataset) -> dict:
        """The whitelisted header values of ``ds`` as plain Python values, with age derived.

        ``PatientAge`` (0010,1010) is kept under the Retain Patient Characteristics option; when it is
        missing it is derived from (0010,0030) PatientBirthDate and (0008,0020) StudyDate, and both
        dates are then dropped.
        """
        header: dict = {}
        for keyword in KEPT_ATTRIBUTES:
            element = ds.get(keyword)
            if element is None or element == "":
                continue
            header[keyword] = _plain(element)
        if "PatientAge" not in header:
            age = age_from_dates(ds.get("PatientBirthDate"), ds.get("StudyDate"))
            if age is not None:
                header["PatientAge"] = age
        return header

    def deidentify_dataset(self, ds: Dataset) -> Dataset:
        """Apply :data:`BASIC_PROFILE` to a copy of ``ds``; private tags and curves/overlay data go too.

        Sequences are walked recursively, so a name hidden inside a sequence item is removed as well.
        """
        # a deep copy: elements are changed in place below and must not touch the caller's dataset
        out = copy.deepcopy(ds)
        self._apply(out)
        if hasattr(out, "file_meta"):
            self._apply(out.file_meta)
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = "PS3.15 Basic Application Level Confidentiality Profile (NBRisk)"
        return out

    def _apply(self, ds: Dataset) -> None:
        ds.remove_private_tags()
        for keyword, action in BASIC_PROFILE.items():
            if keyword not in ds:
                continue
            element = ds[keyword]
            if action == "X":
                del ds[keyword]
            elif action == "U":
                element.value = self.uid(str(element.value))
            elif action == "Z":
                element.value = "" if element.VR not in ("SQ",) else []
            elif action == "D":
                element.value = "ANONYMIZED" if element.VR in ("LO", "SH", "PN", "LT", "ST", "UT") else ""
        for element in list(ds):
            if element.VR == "SQ":
                for item in element.value:
                    self._apply(item)
            elif element.VR == "UI" and element.keyword not in (
                    "SOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID",
                    "ImplementationClassUID", "ReferencedSOPClassUID"):
                # any instance UID the table does not name explicitly is remapped too
                if element.value and not str(element.value).startswith("2.25."):
                    element.value = self.uid(str(element.value))


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


__all__ = ["BASIC_PROFILE", "KEPT_ATTRIBUTES", "Deidentifier", "age_from_dates", "age_months",
           "seconds_of_day"]
