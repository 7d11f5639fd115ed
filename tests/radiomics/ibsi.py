"""Helpers for the IBSI 1 tests: read the phantom NIfTI files and the reference table."""

from __future__ import annotations

import csv
import gzip
import struct
from decimal import Decimal
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"

#: the reference table's aggregation labels -> nbrisk_core.radiomics.texture.AGGREGATIONS
AGGREGATION_LABELS = {
    "2D_avg": ("2D, averaged", "2D"), "2D_smrg": ("2D, slice-merged", "2D"),
    "2.5D_dmrg": ("2.5D, direction-merged", "2.5D"), "2.5D_mrg": ("2.5D, merged", "2.5D"),
    "3D_avg": ("3D, averaged", "3D"), "3D_mrg": ("3D, merged", "3D"),
}


def read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A 3-D NIfTI-1 file as ``(array (z, y, x), spacing (z, y, x))`` (enough for the phantom files)."""
    raw = gzip.decompress(path.read_bytes())
    dim = struct.unpack("<8h", raw[40:56])
    datatype = struct.unpack("<h", raw[70:72])[0]
    pixdim = struct.unpack("<8f", raw[76:108])
    offset = int(struct.unpack("<f", raw[108:112])[0])
    slope, inter = struct.unpack("<2f", raw[112:120])
    dtype = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 512: np.uint16}[datatype]
    shape = dim[1:4]
    arr = np.frombuffer(raw[offset:], dtype=dtype, count=int(np.prod(shape))).reshape(shape, order="F")
    arr = arr.astype(np.float64)
    if slope not in (0.0, 1.0) or inter != 0.0:
        arr = arr * (slope or 1.0) + inter
    return np.transpose(arr, (2, 1, 0)), (pixdim[3], pixdim[2], pixdim[1])


def digital_phantom() -> tuple[np.ndarray, np.ndarray, tuple]:
    image, spacing = read_nifti(DATA / "digital_phantom_image.nii.gz")
    mask, _ = read_nifti(DATA / "digital_phantom_mask.nii.gz")
    return image, mask > 0.5, spacing


def tolerance(value: str, tol: str) -> float:
    """The published tolerance, or (digital phantom: none published) half a unit of the last digit
    given, i.e. the value must round to the published figure."""
    if tol:
        return float(tol)
    exponent = Decimal(value).as_tuple().exponent
    return 0.5 * 10.0 ** exponent + 1e-12


def references(data: str) -> list[dict]:
    with open(DATA / "ibsi1_reference.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["data"] == data]
    return [r for r in rows if r["value"] not in ("", "—")]
