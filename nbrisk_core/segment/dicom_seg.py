"""Write a phase's tumour mask as a DICOM Segmentation (SEG) instance with highdicom.

A DICOM SEG (PS3.3 A.51, Segmentation IOD) belongs to the study it was made from: each frame
references the CT instance it segments, by (0008,1155) ReferencedSOPInstanceUID in
(0008,2112) SourceImageSequence of its (0008,9124) DerivationImageSequence, and the instance
shares the source's (0020,000D) StudyInstanceUID, (0020,0052) FrameOfReferenceUID and patient
module, so that an archive or viewer files it with the CT series and overlays it.

NBRisk reads a study de-identified (:mod:`nbrisk_core.imaging.deid`: UIDs remapped), so the
segmentation's series are matched back to the source files: the study is read with a known
:class:`~nbrisk_core.imaging.deid.Deidentifier` and each source file's (0020,000E)
SeriesInstanceUID remapped with it gives the series; within a series the slices are matched by
position along the slice normal ((0020,0032) ImagePositionPatient . normal of (0020,0037)
ImageOrientationPatient), the ordering of :class:`~nbrisk_core.imaging.dicom_io.CTSeries`.

The SEG is BINARY with one segment ("Tumour": SCT 49755003 Morphologically abnormal structure /
SCT 108369006 Neoplasm), algorithm type AUTOMATIC, the model's SHA-256 as algorithm version.
Empty frames are omitted (highdicom's default) unless the whole mask is empty.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from nbrisk_core.errors import InputError

#: how far (mm) a source file's position may lie from the series' slice it is matched to
POSITION_TOLERANCE_MM = 1e-2
SEGMENT_LABEL = "Tumour"
#: (0020,0011) SeriesNumber of each phase's SEG (high, so the CT series keep their numbers first)
SERIES_NUMBERS = {"nc": 9001, "art": 9002, "pv": 9003}


def _position(ds) -> float | None:
    orientation = getattr(ds, "ImageOrientationPatient", None)
    position = getattr(ds, "ImagePositionPatient", None)
    if orientation is None or position is None or len(orientation) != 6:
        return None
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
    return float(np.dot(np.asarray(position, float), normal))


def source_headers(source, deidentifier) -> dict[str, list]:
    """The source CT files' headers (no pixels) of ``source`` by remapped series UID.

    ``deidentifier`` is the one the study was read with (:func:`~nbrisk_core.imaging.dicom_io.load_study`).
    """
    import pydicom

    from nbrisk_core.imaging.sources import Scratch, collect_sources

    by_series: dict[str, list] = defaultdict(list)
    scratch = Scratch()
    try:
        for sf in collect_sources(source, scratch):
            try:
                ds = pydicom.dcmread(sf.open(), stop_before_pixels=True)  # a path, or bytes in memory
            except Exception:  # noqa: BLE001 - not DICOM (the reader skipped it too, with its reason)
                continue
            uid = getattr(ds, "SeriesInstanceUID", None)
            if uid and getattr(ds, "Modality", None) == "CT":
                by_series[deidentifier.uid(str(uid))].append(ds)
    finally:
        scratch.close()
    return dict(by_series)


def match_slices(headers: list, z_mm: np.ndarray, series_uid: str) -> list:
    """The source header of each slice of a series (``z_mm`` ascending), matched by position."""
    positions = [(_position(ds), ds) for ds in headers]
    if any(p is None for p, _ in positions) or any(int(getattr(ds, "NumberOfFrames", 1) or 1) > 1
                                                   for _, ds in positions):
        raise InputError(f"series {series_uid}: DICOM SEG export needs single-frame CT files with "
                         "(0020,0032) ImagePositionPatient and (0020,0037) ImageOrientationPatient")
    known = np.array([p for p, _ in positions])
    matched = []
    for k, z in enumerate(np.asarray(z_mm, float)):
        nearest = int(np.argmin(np.abs(known - z)))
        if abs(known[nearest] - z) > POSITION_TOLERANCE_MM:
            raise InputError(f"series {series_uid}: slice {k} at z {z:.2f} mm has no source file at that "
                             f"position (nearest {known[nearest]:.2f} mm); expected the files the study was "
                             "read from")
        matched.append(positions[nearest][1])
    return matched


def segmentation_dataset(source_images: list, mask: np.ndarray, *, model_name: str, model_sha256: str,
                         phase: str):
    """The highdicom ``Segmentation`` of ``mask`` ``(slices, rows, cols)``, frame k segmenting
    ``source_images[k]``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from nbrisk_core import __version__

    mask = np.asarray(mask, dtype=bool)
    if mask.shape[0] != len(source_images):
        raise ValueError(f"mask has {mask.shape[0]} slices, the series {len(source_images)} source images")
    algorithm = hd.AlgorithmIdentificationSequence(name=model_name, version=model_sha256[:64] or "unknown",
                                                   family=codes.cid7162.ArtificialIntelligence)
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label=SEGMENT_LABEL,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        tracking_uid=hd.UID(), tracking_id=f"tumour-{phase}")
    return hd.seg.Segmentation(
        source_images=source_images, pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[description],
        series_instance_uid=generate_uid(), series_number=SERIES_NUMBERS.get(phase, 9009),
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="NBRisk",
        manufacturer_model_name=model_name, software_versions=__version__, device_serial_number="none",
        series_description=f"NBRisk tumour segmentation {phase.upper()} (research use)",
        content_label="TUMOUR", content_description=f"Automatic tumour segmentation, phase {phase}",
        omit_empty_frames=bool(mask.any()))


def write_dicom_seg(path, source_images: list, mask: np.ndarray, **kwargs) -> Path:
    """Write :func:`segmentation_dataset` to ``path``."""
    path = Path(path)
    segmentation_dataset(source_images, mask, **kwargs).save_as(path)
    return path


__all__ = ["match_slices", "segmentation_dataset", "source_headers", "write_dicom_seg"]
