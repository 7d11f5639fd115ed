"""Write small synthetic CT series as DICOM files (tests and benchmarks; no patient data).

The files are ordinary CT Image Storage instances (explicit VR little endian, uncompressed,
(0028,1052) RescaleIntercept -1024, slope 1), so they exercise the same reader path as a scanner
export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def write_ct_series(out_dir, hu: np.ndarray, *, pixel_spacing=(0.8, 0.8), slice_spacing: float = 2.0,
                    z0: float = 0.0, description: str = "", contrast_agent: str = "",
                    acquisition_time: str = "101500", series_number: int = 1,
                    study_uid: str | None = None, series_uid: str | None = None,
                    patient: dict | None = None, shuffle_seed: int | None = None,
                    intercept: float = -1024.0) -> list[Path]:
    """Write ``hu`` (``(n, rows, cols)``, ascending z) as one DICOM file per slice in ``out_dir``.

    File names are numbered in a shuffled order when ``shuffle_seed`` is given, so a reader that
    sorts by file name instead of position fails the tests. Returns the written paths.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.dataset import FileDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hu = np.asarray(hu)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    order = np.arange(hu.shape[0])
    if shuffle_seed is not None:
        np.random.default_rng(shuffle_seed).shuffle(order)
    stored_all = np.clip(np.rint(hu - intercept), 0, 65535).astype(np.uint16)
    paths = []
    patient = patient or {}
    for file_number, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = out / f"IM{file_number + 1:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesNumber = series_number
        ds.InstanceNumber = int(k) + 1
        ds.SeriesDescription = description
        if contrast_agent:
            ds.ContrastBolusAgent = contrast_agent
        ds.AcquisitionTime = acquisition_time
        ds.PatientName = patient.get("name", "SYNTHETIC^PATIENT")
        ds.PatientID = patient.get("id", "SYN0001")
        ds.PatientBirthDate = patient.get("birth_date", "20200115")
        ds.PatientSex = patient.get("sex", "F")
        ds.StudyDate = patient.get("study_date", "20230301")
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(z0 + k * slice_spacing)]
        ds.SliceThickness = float(slice_spacing)
        ds.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
        ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope = 1
        ds.RescaleIntercept = intercept
        ds.RescaleType = "HU"
        ds.PixelData = stored_all[k].tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def phantom_volume(n_slices: int = 12, rows: int = 64, cols: int = 64, *, centre=None, radii=(4.0, 14.0, 12.0),
                   tumour_hu: float = 30.0, background_hu: float = -80.0, aorta_hu: float = 40.0,
                   seed: int = 0, noise_hu: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """A small abdomen-like phantom: muscle wall, visceral fat, aorta, spine and an ellipsoid tumour.

    Returns ``(hu, mask)``.

    ``radii`` are (slices, rows, cols) of the tumour ellipsoid, so its cross-section is largest at
    the centre slice: the known max-area slice.
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:n_slices, 0:rows, 0:cols].astype(np.float32)
    cz, cy, cx = centre if centre is not None else ((n_slices - 1) / 2, rows * 0.45, cols * 0.6)
    body = ((y - rows / 2) / (rows * 0.45)) ** 2 + ((x - cols / 2) / (cols * 0.47)) ** 2 <= 1
    # abdominal wall (muscle) around a cavity of visceral fat, where a neuroblastoma grows
    hu = np.where(body, 55.0, -1000.0).astype(np.float32)
    cavity = body & (((y - rows / 2) / (rows * 0.45)) ** 2 + ((x - cols / 2) / (cols * 0.47)) ** 2 <= 0.8)
    hu[cavity] = background_hu
    aorta = (y - rows * 0.6) ** 2 + (x - cols * 0.42) ** 2 <= (rows * 0.05) ** 2
    hu[aorta] = aorta_hu
    spine = (y - rows * 0.75) ** 2 + (x - cols * 0.5) ** 2 <= (rows * 0.08) ** 2
    hu[spine] = 900.0  # cortical bone (the phase cue leaves bone out)
    mask = ((z - cz) / radii[0]) ** 2 + ((y - cy) / radii[1]) ** 2 + ((x - cx) / radii[2]) ** 2 <= 1
    hu[mask] = tumour_hu
    hu += rng.normal(0.0, noise_hu, size=hu.shape).astype(np.float32)
    return np.rint(hu).astype(np.int16), mask.astype(np.uint8)
