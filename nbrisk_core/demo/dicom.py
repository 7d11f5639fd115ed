"""Full multiphase DICOM studies of demo patients (CT Image Storage, written with pydicom).

One study per patient with three series (NC, ART, PV) in acquisition order. Every UID is derived
from the cohort seed, the patient and the phase/slice as a name-based UUID (``2.25.x`` UIDs),
dates are obviously fake (1900-01-01), and the patient is named
``SYNTHETIC^P0007`` with ID ``SYNTH-P0007``. Pixels are stored unsigned, ``HU + 1024``, with
(0028,1053) RescaleSlope 1 and (0028,1052) RescaleIntercept -1024, so that applying the modality
LUT gives back the renderer's int16 HU exactly.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from nbrisk_core.demo.render import PHASES, CaseGeometry, render_slice

#: Fixed zip timestamp so that the same seed gives the same bytes.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class PhaseProtocol:
    """How one series is labelled and when it is acquired (seconds after contrast injection)."""

    phase: str
    folder: str
    number: int
    description: str
    delay_s: tuple[float, float] | None   # None: before injection, no contrast


PHASE_PROTOCOLS: dict[str, PhaseProtocol] = {
    p.phase: p
    for p in (
        PhaseProtocol("nc", "NC", 1, "NC non-contrast", None),
        PhaseProtocol("art", "ART", 2, "ART arterial phase", (25.0, 35.0)),
        PhaseProtocol("pv", "PV", 3, "PV portal venous phase", (60.0, 70.0)),
    )
}

STUDY_DATE = "19000101"   # obviously fake
INJECTION_SECONDS = 9 * 3600 + 2 * 60   # 09:02:00
CONTRAST_AGENT = "Iohexol 300 mgI/mL (synthetic)"


#: Namespace of the name-based UUIDs behind every demo UID.
UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:nbrisk:synthetic-demo")


#: (0002,0012) ImplementationClassUID of the files this generator writes.
IMPLEMENTATION_CLASS_UID = f"2.25.{uuid.uuid5(UID_NAMESPACE, 'implementation-class').int}"


def _uid(seed: int, patient_id: str, *parts) -> str:
    """A deterministic ``2.25.<uuid>`` UID (PS3.5 B.2, ISO/IEC 9834-8) named by seed, patient, parts.

    ``pydicom.uid.generate_uid(prefix=None, ...)`` ignores its entropy sources and returns a
    random UUID4, so the name-based UUID (version 5) is formed here instead.
    """
    name = "|".join(["nbrisk-synthetic-demo", str(seed), patient_id, *map(str, parts)])
    return UID(f"2.25.{uuid.uuid5(UID_NAMESPACE, name).int}")


def _dicom_time(seconds: float) -> str:
    seconds = round(seconds, 2)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}{int(m):02d}{s:05.2f}"


def acquisition_seconds(geom: CaseGeometry) -> dict[str, float]:
    """Time of day (s) of each series: NC before injection, ART ~25-35 s and PV ~60-70 s after."""
    rng = np.random.default_rng([*geom.key, 13])
    times = {}
    for phase, proto in PHASE_PROTOCOLS.items():
        if proto.delay_s is None:
            times[phase] = INJECTION_SECONDS - 60.0
        else:
            times[phase] = INJECTION_SECONDS + float(rng.uniform(*proto.delay_s))
    return times


def slice_positions(geom: CaseGeometry) -> np.ndarray:
    """z (mm) of every slice, ascending, centred on the middle of the volume."""
    return (np.arange(geom.n_slices) - (geom.n_slices - 1) / 2.0) * geom.slice_thickness


def build_slice_dataset(geom: CaseGeometry, clinical: dict, seed: int, patient_id: str, phase: str,
                        k: int, hu: np.ndarray) -> Dataset:
    """One CT Image Storage dataset for slice ``k`` of ``phase`` (pixels from ``hu``, int16 HU)."""
    proto = PHASE_PROTOCOLS[phase]
    times = acquisition_seconds(geom)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = "NBRISK_DEMO_1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = _dicom_time(INJECTION_SECONDS - 120.0)
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = _dicom_time(times[phase])
    ds.AccessionNumber = f"SYNTH{patient_id[1:]}"
    ds.Modality = "CT"
    ds.Manufacturer = "NBRisk synthetic demo"
    ds.InstitutionName = "SYNTHETIC"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT ABDOMEN MULTIPHASE (SYNTHETIC)"
    ds.SeriesDescription = proto.description
    ds.PatientName = f"SYNTHETIC^{patient_id}"
    ds.PatientID = f"SYNTH-{patient_id}"
    ds.PatientBirthDate = ""
    ds.PatientSex = clinical["sex"]
    ds.PatientAge = f"{min(int(clinical['age_months']), 999):03d}M"
    ds.PatientComments = "Synthetic NBRisk demo patient: not a real person."
    ds.BodyPartExamined = "ABDOMEN"
    ds.SliceThickness = geom.slice_thickness
    ds.SpacingBetweenSlices = geom.slice_thickness
    ds.KVP = 100
    ds.PatientPosition = "HFS"
    if proto.delay_s is not None:
        ds.ContrastBolusAgent = CONTRAST_AGENT
        ds.ContrastBolusRoute = "IV"
        ds.ContrastBolusStartTime = _dicom_time(INJECTION_SECONDS)
    ds.StudyInstanceUID = _uid(seed, patient_id, "study")
    ds.SeriesInstanceUID = _uid(seed, patient_id, "series", phase)
    ds.StudyID = "1"
    ds.SeriesNumber = proto.number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = _uid(seed, patient_id, "frame")
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = geom.size
    ds.PixelSpacing = [_ds(geom.pixel_spacing), _ds(geom.pixel_spacing)]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    set_slice(ds, geom, seed, patient_id, phase, k, hu)
    return ds


def set_slice(ds: Dataset, geom: CaseGeometry, seed: int, patient_id: str, phase: str, k: int,
              hu: np.ndarray) -> None:
    """Set the elements that differ between the slices of a series (UID, number, position, pixels).

    Writing a series re-uses one dataset and calls this per slice: building ~70 elements per file
    with pydicom costs more than rendering the slice.
    """
    sop_uid = _uid(seed, patient_id, "sop", phase, k)
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = k + 1
    z = float(slice_positions(geom)[k])
    origin = -(geom.size - 1) / 2.0 * geom.pixel_spacing
    ds.ImagePositionPatient = [_ds(origin), _ds(origin), _ds(z)]
    ds.SliceLocation = _ds(z)
    ds.PixelData = (hu.astype(np.int32) + 1024).astype("<u2").tobytes()


def _ds(value: float) -> str:
    # DS strings are at most 16 characters; a fixed format keeps them deterministic and short
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def write_study_files(geom: CaseGeometry, clinical: dict, seed: int, patient_id: str, out_dir: Path,
                      as_zip: bool = False) -> list[Path]:
    """Render every slice of the three phases and write ``out_dir/<patient_id>/{NC,ART,PV}/IM0001.dcm``.

    Returns the written paths (and ``out_dir/<patient_id>.zip`` if ``as_zip``).
    """
    root = Path(out_dir) / patient_id
    written: list[Path] = []
    blobs: list[tuple[str, bytes]] = []
    for phase in PHASES:
        folder = root / PHASE_PROTOCOLS[phase].folder
        folder.mkdir(parents=True, exist_ok=True)
        ds = None
        for k in range(geom.n_slices):
            hu, _ = render_slice(geom, phase, k)
            if ds is None:
                ds = build_slice_dataset(geom, clinical, seed, patient_id, phase, k, hu)
            else:
                set_slice(ds, geom, seed, patient_id, phase, k, hu)
            buffer = io.BytesIO()
            pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
            data = buffer.getvalue()
            path = folder / f"IM{k + 1:04d}.dcm"
            path.write_bytes(data)
            written.append(path)
            if as_zip:
                blobs.append((f"{patient_id}/{PHASE_PROTOCOLS[phase].folder}/{path.name}", data))
    if as_zip:
        zip_path = Path(out_dir) / f"{patient_id}.zip"
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in blobs:
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
        written.append(zip_path)
    return written
