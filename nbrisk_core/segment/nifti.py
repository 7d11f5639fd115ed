"""Write a segmentation mask as a NIfTI-1 file (``.nii.gz``), with numpy and the standard library only.

The header follows the NIfTI-1 standard (``nifti1.h``: 348-byte header, the 4-byte extension flag,
data from byte 352, voxel ``(i, j, k)`` = (column, row, slice) with ``i`` varying fastest). The
affine (``sform``, code 2 "aligned") maps voxels to RAS millimetres from (0028,0030) PixelSpacing,
(0020,0037) ImageOrientationPatient, the slice spacing and the first slice's position along the
normal. The de-identified reader does not keep the in-plane part of (0020,0032)
ImagePositionPatient, so the in-plane origin is 0: the mask matches its series voxel for voxel, not
in scanner coordinates. nibabel reads these files (``nibabel.load(path).get_fdata()``).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

HEADER_SIZE = 348
VOX_OFFSET = 352
DT_UINT8 = 2
NIFTI_XFORM_ALIGNED_ANAT = 2
NIFTI_UNITS_MM = 2


def mask_affine(pixel_spacing, slice_spacing_mm: float, first_z_mm: float, orientation=None) -> np.ndarray:
    """4 x 4 voxel (column, row, slice) -> RAS (mm) matrix."""
    row_dir, col_dir = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    if orientation is not None and len(orientation) == 6:
        row_dir, col_dir = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row_dir, col_dir)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * float(pixel_spacing[1])    # along a row: the column index
    lps[:3, 1] = col_dir * float(pixel_spacing[0])    # down a column: the row index
    lps[:3, 2] = normal * float(slice_spacing_mm)
    lps[:3, 3] = normal * float(first_z_mm)
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps      # DICOM LPS -> NIfTI RAS


def nifti_bytes(mask: np.ndarray, affine: np.ndarray, description: str = "NBRisk tumour mask") -> bytes:
    """The uncompressed NIfTI-1 bytes of a ``(slices, rows, cols)`` mask (stored as uint8 0/1)."""
    volume = np.asarray(mask).astype(np.uint8)
    if volume.ndim != 3:
        raise ValueError(f"expected a 3-D mask (slices, rows, columns); got shape {volume.shape}")
    n, rows, cols = volume.shape
    header = bytearray(VOX_OFFSET)
    struct.pack_into("<i", header, 0, HEADER_SIZE)
    struct.pack_into("<8h", header, 40, 3, cols, rows, n, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, DT_UINT8, 8)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    struct.pack_into("<8f", header, 76, 1.0, *spacing, 0.0, 0.0, 0.0, 0.0)
    struct.pack_into("<fff", header, 108, float(VOX_OFFSET), 1.0, 0.0)
    struct.pack_into("<B", header, 123, NIFTI_UNITS_MM)
    struct.pack_into("<ff", header, 124, 1.0, 0.0)                 # cal_max, cal_min
    struct.pack_into("<80s", header, 148, description.encode("ascii", "replace")[:79])
    struct.pack_into("<hh", header, 252, 0, NIFTI_XFORM_ALIGNED_ANAT)
    for row in range(3):
        struct.pack_into("<4f", header, 280 + 16 * row, *(float(v) for v in affine[row]))
    struct.pack_into("<4s", header, 344, b"n+1\0")
    # (slices, rows, cols) in C order is (cols, rows, slices) in Fortran order: i = column fastest
    return bytes(header) + volume.tobytes(order="C")


def write_mask_nifti(path, mask: np.ndarray, affine: np.ndarray,
                     description: str = "NBRisk tumour mask") -> Path:
    """Write ``path`` (``.nii.gz``: gzip with a fixed timestamp, so the same mask gives the same bytes)."""
    path = Path(path)
    data = nifti_bytes(mask, affine, description)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
        handle.write(data)
    return path


def read_mask_nifti(path) -> tuple[np.ndarray, np.ndarray]:
    """Read back a file of :func:`write_mask_nifti` as ``(mask (slices, rows, cols) uint8, affine)``."""
    data = gzip.decompress(Path(path).read_bytes())
    if struct.unpack_from("<i", data, 0)[0] != HEADER_SIZE or data[344:347] != b"n+1":
        raise ValueError(f"{path}: not a single-file NIfTI-1 image")
    dims = struct.unpack_from("<8h", data, 40)
    cols, rows, n = dims[1:4]
    offset = int(struct.unpack_from("<f", data, 108)[0])
    affine = np.eye(4)
    for row in range(3):
        affine[row] = struct.unpack_from("<4f", data, 280 + 16 * row)
    volume = np.frombuffer(data, dtype=np.uint8, count=n * rows * cols, offset=offset).reshape(n, rows, cols)
    return volume.copy(), affine
