"""Read a CT study: files -> DICOM instances -> series sorted along the slice normal, in HU.

``load_study(source)`` is the one reader behind the dashboard's upload, ``nbrisk inspect`` and
:func:`nbrisk_core.imaging.read_phase_input`. It never raises on a bad *file*: a truncated,
corrupt, non-DICOM or undecodable file is listed in :attr:`Study.skipped` with the reason, and the
rest of the upload stays usable. It raises :class:`~nbrisk_core.errors.InputError` only when the
source as a whole is unusable (missing path, unsafe zip).

Geometry follows PS3.3 C.7.6.2: the slice normal is the cross product of the row and column
direction cosines of (0020,0037) ImageOrientationPatient, and a slice's position along it is the
dot product with (0020,0032) ImagePositionPatient. HU come from pydicom's
:func:`pydicom.pixels.apply_modality_lut` ((0028,1053) RescaleSlope, (0028,1052) RescaleIntercept,
or a Modality LUT Sequence). Headers are de-identified on the way in (:mod:`.deid`).
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nbrisk_core.errors import InputError
from nbrisk_core.imaging.deid import Deidentifier, seconds_of_day
from nbrisk_core.imaging.images2d import IMAGE_SUFFIXES, looks_like_image, read_image_2d
from nbrisk_core.imaging.sources import SourceFile, collect_sources

#: (0008,0008) ImageType values of projection images that are not axial slices
LOCALIZER_TYPES = frozenset({"LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW", "SCANOGRAM"})
#: relative tolerance on slice spacing before it is reported as non-uniform
SPACING_TOLERANCE = 0.05
#: pixel data above this size is read lazily from disk, so a study never sits twice in memory
_DEFER_SIZE = "64 KB"


@dataclass(frozen=True)
class SkippedFile:
    """A file (or frame) that was not used, and why."""

    name: str
    reason: str


@dataclass
class CTSeries:
    """One image series, sorted by ascending position along the slice normal.

    Attributes
    ----------
    series_uid : str
        (0020,000E) SeriesInstanceUID, remapped by the de-identifier (never the original).
    hu : ndarray, shape (n_slices, rows, cols)
        Hounsfield units (int16 when the rescale is integral, else float32); for 2-D images
        (``is_hu`` False) the 8-bit grey values as uint8.
    z_mm : ndarray, shape (n_slices,)
        Position of each slice along the slice normal, ascending.
    pixel_spacing : (float, float)
        (0028,0030) PixelSpacing: row spacing, column spacing in mm (1, 1 with a warning if absent).
    slice_spacing_mm : float or None
        Median distance between consecutive slices.
    orientation : tuple of 6 float or None
        (0020,0037) ImageOrientationPatient.
    header : dict
        De-identified header values (see :data:`nbrisk_core.imaging.deid.KEPT_ATTRIBUTES`) plus
        ``description_keywords`` and ``acquisition_seconds`` (relative to the study's first series).
    warnings : list of str
        What the user should know about this series (non-uniform spacing, gantry tilt, gaps...).
    """

    series_uid: str
    hu: np.ndarray
    z_mm: np.ndarray
    pixel_spacing: tuple[float, float]
    slice_spacing_mm: float | None
    orientation: tuple[float, ...] | None
    header: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source_names: list[str] = field(default_factory=list)
    is_hu: bool = True
    label: str = ""

    @property
    def n_slices(self) -> int:
        return int(self.hu.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.hu.shape)

    @property
    def description(self) -> str:
        return self.label

    def nearest_slice(self, z_mm: float) -> int:
        """Index of the slice whose position is nearest to ``z_mm`` (to carry a choice across phases)."""
        return int(np.argmin(np.abs(self.z_mm - float(z_mm))))

    def summary(self) -> dict:
        """A JSON-friendly description (no pixel data), as ``nbrisk inspect --json`` prints it."""
        return {
            "series_uid": self.series_uid,
            "label": self.label,
            "modality": self.header.get("Modality", ""),
            "n_slices": self.n_slices,
            "rows": self.shape[1],
            "columns": self.shape[2],
            "pixel_spacing_mm": [round(float(s), 4) for s in self.pixel_spacing],
            "slice_spacing_mm": None if self.slice_spacing_mm is None else round(float(self.slice_spacing_mm), 4),
            "z_range_mm": [round(float(self.z_mm[0]), 3), round(float(self.z_mm[-1]), 3)],
            "units": ("HU" if self.is_hu else "grey (8-bit image)" if self.header.get("image_file")
                      else "stored values (not HU)"),
            "contrast_agent": bool(self.header.get("ContrastBolusAgent")),
            "warnings": list(self.warnings),
        }


@dataclass
class Study:
    """Everything read from one upload: the image series, what was skipped, study-level warnings."""

    series: list[CTSeries]
    skipped: list[SkippedFile]
    warnings: list[str]
    meta: dict = field(default_factory=dict)

    def by_uid(self, series_uid: str) -> CTSeries:
        for series in self.series:
            if series.series_uid == series_uid:
                return series
        raise InputError(f"series {series_uid!r} is not in this study")


@dataclass
class _Instance:
    """One slice-to-be: a dataset (or one frame of a multi-frame dataset) and its geometry."""

    name: str
    ds: object
    frame: int | None
    series_key: str
    rows: int
    columns: int
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    instance_number: int | None
    rescale: tuple[float, float] | None = None  # per-frame rescale for enhanced multi-frame objects


def load_study(source, deidentifier: Deidentifier | None = None) -> Study:
    """Read every image series in ``source``.

    Parameters
    ----------
    source : path-like or iterable of uploads
        Folder, zip, single DICOM file (single- or multi-frame), DICOMDIR, a 2-D image, or a list
        of ``(name, bytes)`` uploads (see :func:`nbrisk_core.imaging.sources.collect_sources`).
    deidentifier : Deidentifier, optional
        Key for UID remapping; a fresh random one per call by default.

    Returns
    -------
    Study
        ``series`` sorted by (0020,0011) SeriesNumber then acquisition time; ``skipped`` names each
        file not used with the reason.

    Raises
    ------
    InputError
        Only when the source itself is unusable (path missing, unsafe zip).
    """
    deid = deidentifier or Deidentifier()
    files = _expand_dicomdir(source)
    skipped: list[SkippedFile] = []
    study_warnings: list[str] = []
    instances: list[_Instance] = []
    image_series: list[CTSeries] = []
    headers: dict[str, dict] = {}
    raw_times: dict[str, float | None] = {}
    for sf in files:
        if sf.error:
            skipped.append(SkippedFile(sf.name, sf.error))
            continue
        try:
            head = sf.head(132)
        except OSError as error:
            skipped.append(SkippedFile(sf.name, f"cannot be read ({error.strerror or error})"))
            continue
        if len(head) == 0:
            skipped.append(SkippedFile(sf.name, "empty file (0 bytes)"))
            continue
        if head[128:132] != b"DICM" and looks_like_image(sf.name, head):
            try:
                grey = read_image_2d(sf)
            except InputError as error:
                skipped.append(SkippedFile(sf.name, str(error)))
                continue
            image_series.append(_image_series(sf.name, grey, deid))
            continue
        result = _read_instances(sf, deid, headers, raw_times)
        if isinstance(result, SkippedFile):
            skipped.append(result)
        else:
            instances.extend(result)

    groups: dict[str, list[_Instance]] = defaultdict(list)
    for inst in instances:
        groups[inst.series_key].append(inst)
    series: list[CTSeries] = []
    for key, members in groups.items():
        built = _build_series(key, members, headers[key], skipped)
        if built is not None:
            series.append(built)
    _relative_times(series, raw_times)
    series.sort(key=lambda s: (s.header.get("SeriesNumber", 1 << 30), s.header.get("acquisition_seconds") or 0.0))
    series.extend(image_series)
    if not series:
        study_warnings.append("no image series could be loaded")
    ages = {s.header.get("PatientAge") for s in series if s.header.get("PatientAge")}
    sexes = {s.header.get("PatientSex") for s in series if s.header.get("PatientSex")}
    if len(ages) > 1 or len(sexes) > 1:
        study_warnings.append("series disagree on patient age or sex: are they from the same patient?")
    meta = {"age": sorted(ages)[0] if ages else None, "sex": sorted(sexes)[0] if sexes else None,
            "n_series": len(series), "n_skipped": len(skipped)}
    return Study(series=series, skipped=skipped, warnings=study_warnings, meta=meta)


# --------------------------------------------------------------------------------------------
# reading instances

def _expand_dicomdir(source) -> list[SourceFile]:
    """Files of ``source``; a DICOMDIR given as the source is replaced by the files it references."""
    if isinstance(source, str | Path) and Path(source).is_file() and Path(source).name.upper() == "DICOMDIR":
        import pydicom
        from pydicom.fileset import FileSet

        path = Path(source)
        try:
            fileset = FileSet(pydicom.dcmread(path))
        except Exception as error:  # noqa: BLE001 - any parse failure is a bad DICOMDIR
            raise InputError(f"{path}: not a readable DICOMDIR ({error})", source=str(path)) from None
        files = []
        for instance in fileset:
            ref = Path(instance.path)
            files.append(SourceFile(str(ref.relative_to(path.parent)) if ref.is_relative_to(path.parent)
                                    else ref.name, path=ref))
        return files
    return collect_sources(source)


def _read_instances(sf: SourceFile, deid: Deidentifier, headers: dict, raw_times: dict):
    import pydicom
    from pydicom.errors import InvalidDicomError

    defer = _DEFER_SIZE if sf.path is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(sf.open(), defer_size=defer)
            except InvalidDicomError:
                # files without the 128-byte preamble are still DICOM if they start with a group 0008 tag
                if sf.head(2) not in (b"\x08\x00", b"\x02\x00"):
                    return SkippedFile(sf.name, "not a DICOM file (no 'DICM' marker, not an image format "
                                       f"NBRisk reads: {', '.join(IMAGE_SUFFIXES)})")
                ds = pydicom.dcmread(sf.open(), defer_size=defer, force=True)
    except Exception as error:  # noqa: BLE001 - pydicom raises many types on corrupt input
        return SkippedFile(sf.name, f"unreadable DICOM ({type(error).__name__}: {error})")

    if "DirectoryRecordSequence" in ds:
        return SkippedFile(sf.name, "DICOMDIR index (the image files it lists are read directly)")
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        sop = getattr(ds.get("SOPClassUID"), "name", None) or str(ds.get("SOPClassUID", "unknown SOP class"))
        return SkippedFile(sf.name, f"not an image ({sop}, no pixel data)")
    image_type = {str(v).upper() for v in (ds.get("ImageType") or [])}
    if image_type & LOCALIZER_TYPES:
        return SkippedFile(sf.name, f"localizer/scout image (ImageType {'/'.join(sorted(image_type))})")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        return SkippedFile(sf.name, f"colour image (SamplesPerPixel {samples}, PhotometricInterpretation "
                           f"{ds.get('PhotometricInterpretation', '?')}); CT slices are greyscale")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        return SkippedFile(sf.name, "image without (0028,0010) Rows / (0028,0011) Columns")
    try:
        _check_transfer_syntax(ds)
    except InputError as error:
        return SkippedFile(sf.name, str(error))

    original_uid = str(ds.get("SeriesInstanceUID", "") or "")
    key = deid.uid(original_uid) if original_uid else "unknown-series"
    if key not in headers:
        header = deid.kept_header(ds)
        from nbrisk_core.imaging.phases import description_keywords

        header["description_keywords"] = description_keywords(
            " ".join(str(ds.get(k, "") or "") for k in ("SeriesDescription", "ProtocolName")))
        header["series_label"] = _series_label(ds, header)
        if not original_uid:
            header["missing_series_uid"] = True
        headers[key] = header
        raw_times[key] = _acquisition_seconds(ds)
    if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
        headers[key]["BurnedInAnnotation"] = "YES"  # (0028,0301) on any image of the series (burned_in.py)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames > 1:
        try:
            return _frames(sf, ds, key, rows, columns, n_frames)
        except (AttributeError, TypeError, ValueError, IndexError) as error:
            return SkippedFile(sf.name, f"multi-frame geometry cannot be read ({type(error).__name__}: {error})")
    return [_Instance(
        name=sf.name, ds=ds, frame=None, series_key=key, rows=rows, columns=columns,
        position=_floats(ds.get("ImagePositionPatient"), 3), orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        pixel_spacing=_spacing(ds.get("PixelSpacing")), instance_number=_int(ds.get("InstanceNumber")),
    )]


def _check_transfer_syntax(ds) -> None:
    from pydicom.pixels import get_decoder

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise InputError(f"transfer syntax {syntax.name} ({syntax}) is not supported") from None
    if not decoder.is_available:
        raise InputError(f"no installed decoder for transfer syntax {syntax.name} ({syntax})")


def _frames(sf: SourceFile, ds, key: str, rows: int, columns: int, n_frames: int) -> list[_Instance]:
    """The frames of a multi-frame object (enhanced CT: geometry in the functional groups)."""
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    spacing = _spacing(ds.get("PixelSpacing"))
    rescale_shared = None
    if shared is not None:
        shared_orientation = _group_value(shared, "PlaneOrientationSequence", "ImageOrientationPatient", 6)
        orientation = shared_orientation if shared_orientation is not None else orientation
        spacing = _spacing(_group_raw(shared, "PixelMeasuresSequence", "PixelSpacing")) or spacing
        rescale_shared = _group_rescale(shared)
    base_position = _floats(ds.get("ImagePositionPatient"), 3)
    step = float(ds.get("SpacingBetweenSlices", 0) or ds.get("SliceThickness", 0) or 0)
    out = []
    for index in range(n_frames):
        group = per_frame[index] if index < len(per_frame) else None
        position = _group_value(group, "PlanePositionSequence", "ImagePositionPatient", 3) if group else None
        frame_orientation = (_group_value(group, "PlaneOrientationSequence", "ImageOrientationPatient", 6)
                             if group else None)
        frame_orientation = frame_orientation if frame_orientation is not None else orientation
        if position is None and base_position is not None and frame_orientation is not None and step:
            normal = np.cross(frame_orientation[:3], frame_orientation[3:])
            position = base_position + index * step * normal
        rescale = (_group_rescale(group) if group else None) or rescale_shared
        out.append(_Instance(
            name=f"{sf.name}[frame {index + 1}]", ds=ds, frame=index, series_key=key, rows=rows,
            columns=columns, position=position, orientation=frame_orientation, pixel_spacing=spacing,
            instance_number=index + 1, rescale=rescale,
        ))
    return out


def _group_raw(group, sequence: str, keyword: str):
    if group is None or sequence not in group or not group[sequence].value:
        return None
    return group[sequence].value[0].get(keyword)


def _group_value(group, sequence: str, keyword: str, n: int):
    return _floats(_group_raw(group, sequence, keyword), n)


def _group_rescale(group) -> tuple[float, float] | None:
    slope = _group_raw(group, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _group_raw(group, "PixelValueTransformationSequence", "RescaleIntercept")
    if slope is None or intercept is None:
        return None
    return float(slope), float(intercept)


def _floats(value, n: int) -> np.ndarray | None:
    try:
        array = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if array.shape == (n,) and np.all(np.isfinite(array)) else None


def _spacing(value) -> tuple[float, float] | None:
    array = _floats(value, 2)
    if array is None or np.any(array <= 0):
        return None
    return float(array[0]), float(array[1])


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _acquisition_seconds(ds) -> float | None:
    for keyword in ("AcquisitionTime", "ContentTime", "SeriesTime"):
        seconds = seconds_of_day(ds.get(keyword))
        if seconds is not None:
            return seconds
    return None


def _series_label(ds, header: dict) -> str:
    """A display label without free text: series number, modality and the phase keywords found."""
    number = header.get("SeriesNumber")
    keywords = header.get("description_keywords") or []
    parts = [f"series {number}" if number is not None else "series", str(ds.get("Modality", "") or "")]
    if keywords:
        parts.append("(" + ", ".join(keywords) + ")")
    return " ".join(p for p in parts if p)


def _relative_times(series: list[CTSeries], raw_times: dict) -> None:
    # absolute clock times are identifying under PS3.15; only offsets from the first series are kept
    known = [raw_times.get(s.series_uid) for s in series if raw_times.get(s.series_uid) is not None]
    origin = min(known) if known else None
    for s in series:
        t = raw_times.get(s.series_uid)
        s.header["acquisition_seconds"] = None if t is None or origin is None else round(t - origin, 3)


# --------------------------------------------------------------------------------------------
# building a series

def _build_series(key: str, members: list[_Instance], header: dict, skipped: list[SkippedFile]) -> CTSeries | None:
    series_warnings: list[str] = []
    if header.get("missing_series_uid"):
        series_warnings.append("files without (0020,000E) SeriesInstanceUID were grouped together")
    # mixed sizes: keep the most common matrix, report the rest
    sizes = Counter((m.rows, m.columns) for m in members)
    (rows, columns), _ = sizes.most_common(1)[0]
    if len(sizes) > 1:
        others = [m for m in members if (m.rows, m.columns) != (rows, columns)]
        series_warnings.append(f"mixed image sizes {sorted(sizes)}: kept the {rows} x {columns} slices, "
                               f"skipped {len(others)}")
        skipped.extend(SkippedFile(m.name, f"size {m.rows} x {m.columns} differs from the series' "
                                   f"{rows} x {columns}") for m in others)
        members = [m for m in members if (m.rows, m.columns) == (rows, columns)]
    # slices with another orientation than the majority (e.g. a reformat) are not part of the stack
    oriented = [m for m in members if m.orientation is not None]
    orientation = None
    if oriented:
        counts = Counter(tuple(np.round(m.orientation, 3)) for m in oriented)
        majority = np.asarray(counts.most_common(1)[0][0])
        orientation = majority
        off = [m for m in members if m.orientation is not None and np.max(np.abs(m.orientation - majority)) > 1e-2]
        if off:
            skipped.extend(SkippedFile(m.name, "orientation differs from the rest of the series") for m in off)
            series_warnings.append(f"{len(off)} slices with another orientation were skipped")
            members = [m for m in members if m not in off]
    z, order_warning = _positions_along_normal(members, orientation, header)
    if order_warning:
        series_warnings.append(order_warning)
    order = np.argsort(z, kind="stable")
    members = [members[i] for i in order]
    z = z[order]
    # duplicates at the same position: keep the first, say so
    keep = np.ones(len(members), dtype=bool)
    keep[1:] = np.abs(np.diff(z)) > 1e-3
    if not keep.all():
        series_warnings.append(f"{int((~keep).sum())} slices duplicate another slice's position and were skipped")
        skipped.extend(SkippedFile(m.name, "duplicate slice position") for m, k in zip(members, keep) if not k)
        members = [m for m, k in zip(members, keep) if k]
        z = z[keep]

    hu, ok, read_errors = _read_pixels(members, rows, columns)
    for name, reason in read_errors:
        skipped.append(SkippedFile(name, reason))
    if not ok.any():
        return None
    if not ok.all():
        series_warnings.append(f"{int((~ok).sum())} slices could not be decoded and are missing from the stack")
        hu, z = hu[ok], z[ok]
        members = [m for m, k in zip(members, ok) if k]
    spacing = members[0].pixel_spacing
    if spacing is None:
        series_warnings.append("no (0028,0030) PixelSpacing: areas are in pixels (1 mm assumed)")
        spacing = (1.0, 1.0)
    elif len({m.pixel_spacing for m in members}) > 1:
        series_warnings.append("PixelSpacing differs between slices; the first slice's value is used")
    slice_spacing = _spacing_warnings(z, members, orientation, header, series_warnings)
    modality = header.get("Modality", "")
    if modality and modality != "CT":
        series_warnings.append(f"modality {modality}: pixel values are not Hounsfield units")
    return CTSeries(
        series_uid=key, hu=hu, z_mm=z, pixel_spacing=spacing, slice_spacing_mm=slice_spacing,
        orientation=None if orientation is None else tuple(float(v) for v in orientation),
        header=header, warnings=series_warnings, source_names=[m.name for m in members],
        is_hu=(modality in ("CT", "")), label=header.get("series_label", ""),
    )


def _positions_along_normal(members: list[_Instance], orientation, header) -> tuple[np.ndarray, str | None]:
    if orientation is not None and all(m.position is not None for m in members):
        normal = np.cross(orientation[:3], orientation[3:])
        return np.array([float(np.dot(m.position, normal)) for m in members]), None
    # fallback: (0020,0013) InstanceNumber, spaced by the slice thickness when known
    step = float(header.get("SpacingBetweenSlices") or header.get("SliceThickness") or 1.0)
    numbers = [m.instance_number for m in members]
    if len(members) > 1 and any(n is None for n in numbers):
        warning = ("no ImagePositionPatient/ImageOrientationPatient and no InstanceNumber on some slices: "
                   "slice order is the file order")
        return np.arange(len(members), dtype=float) * step, warning
    warning = None
    if len(members) > 1:
        warning = ("no ImagePositionPatient/ImageOrientationPatient: slices ordered by InstanceNumber, "
                   f"positions assumed {step:g} mm apart")
    return np.asarray([n if n is not None else 0 for n in numbers], dtype=float) * step, warning


def _read_pixels(members: list[_Instance], rows: int, columns: int):
    """Decode and rescale slice by slice into one preallocated volume (peak memory ~ 1 volume)."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_modality_lut, pixel_array

    rescales = [m.rescale or _dataset_rescale(m.ds) for m in members]
    integral = all(r is not None and float(r[0]).is_integer() and float(r[1]).is_integer() for r in rescales)
    integral = integral and not any("ModalityLUTSequence" in m.ds for m in members)
    hu = np.empty((len(members), rows, columns), dtype=np.int16 if integral else np.float32)
    ok = np.zeros(len(members), dtype=bool)
    errors: list[tuple[str, str]] = []
    frames_cache: dict[int, np.ndarray] = {}
    for i, member in enumerate(members):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if member.frame is None:
                    stored = pixel_array(member.ds)
                    lut_source = member.ds
                else:
                    ds_id = id(member.ds)
                    if ds_id not in frames_cache:
                        frames_cache.clear()  # one multi-frame object decoded at a time
                        frames_cache[ds_id] = pixel_array(member.ds)
                    stored = frames_cache[ds_id][member.frame]
                    lut_source = member.ds
                    if member.rescale is not None:
                        lut_source = Dataset()
                        lut_source.RescaleSlope, lut_source.RescaleIntercept = member.rescale
                values = apply_modality_lut(stored, lut_source)
            if values.shape != (rows, columns):
                raise ValueError(f"decoded shape {values.shape} != {rows} x {columns}")
            if hu.dtype == np.int16 and (values.min() < -32768 or values.max() > 32767):
                # rare (non-CT 16-bit data): widen the volume once rather than clip values
                hu = hu.astype(np.float32)
            hu[i] = values
            ok[i] = True
        except Exception as error:  # noqa: BLE001 - any decode failure is reported per file
            errors.append((member.name, f"pixel data cannot be decoded ({type(error).__name__}: {error})"))
        finally:
            if member.frame is None and "PixelData" in member.ds:
                # drop the decoded bytes now, so the study is held once (in ``hu``), not twice
                del member.ds.PixelData
    return hu, ok, errors


def _dataset_rescale(ds) -> tuple[float, float] | None:
    try:
        return float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0)
    except (TypeError, ValueError):
        return None


def _spacing_warnings(z, members, orientation, header, series_warnings) -> float | None:
    if len(z) < 2:
        return None
    steps = np.diff(z)
    median = float(np.median(steps))
    if median <= 0:
        return None
    if np.any(np.abs(steps - median) > SPACING_TOLERANCE * median + 0.01):
        gaps = np.flatnonzero(steps > 1.5 * median)
        if gaps.size:
            missing = int(np.sum(np.rint(steps[gaps] / median) - 1))
            where = ", ".join(f"{z[g]:.1f}-{z[g + 1]:.1f} mm" for g in gaps[:3])
            series_warnings.append(f"about {missing} missing slices (gaps at {where})")
        series_warnings.append(f"non-uniform slice spacing: {steps.min():.2f}-{steps.max():.2f} mm "
                               f"(median {median:.2f} mm)")
    tilt = float(header.get("GantryDetectorTilt") or 0.0)
    if abs(tilt) > 0.01:
        series_warnings.append(f"gantry tilt {tilt:g} deg (0018,1120): slices are not orthogonal to the table")
    elif orientation is not None and all(m.position is not None for m in members):
        normal = np.cross(orientation[:3], orientation[3:])
        delta = members[-1].position - members[0].position
        along = float(np.dot(delta, normal))
        sideways = float(np.linalg.norm(delta - along * normal))
        if abs(along) > 0 and sideways / abs(along) > 0.01:
            angle = float(np.degrees(np.arctan2(sideways, abs(along))))
            series_warnings.append(f"slices shift in-plane along the stack (gantry tilt about {angle:.1f} deg)")
    return median


def _image_series(name: str, grey: np.ndarray, deid: Deidentifier) -> CTSeries:
    """A 2-D image (the paper's BMP export) as a one-slice series of 8-bit grey values."""
    from nbrisk_core.imaging.phases import description_keywords

    keywords = description_keywords(Path(name).stem)
    return CTSeries(
        series_uid=deid.uid("image:" + name), hu=grey[np.newaxis], z_mm=np.zeros(1), pixel_spacing=(1.0, 1.0),
        slice_spacing_mm=None, orientation=None,
        header={"Modality": "OT", "description_keywords": keywords, "acquisition_seconds": None,
                "image_file": True},
        warnings=["2-D image: 8-bit grey values, not HU; no pixel spacing (areas in pixels)"],
        source_names=[name], is_hu=False, label=f"image {Path(name).name}",
    )
