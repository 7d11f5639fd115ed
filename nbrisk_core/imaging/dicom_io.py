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
from nbrisk_core.imaging.deid import Deidentifier
from nbrisk_core.imaging.header import IGNORE, HeaderValueError, header_text, header_texts, header_value
from nbrisk_core.imaging.images2d import IMAGE_SUFFIXES, looks_like_image, read_image_2d
from nbrisk_core.imaging.sources import Scratch, SourceFile, collect_sources, format_bytes

#: (0008,0008) ImageType values of projection images that are not axial slices
LOCALIZER_TYPES = frozenset({"LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW", "SCANOGRAM"})
#: relative tolerance on slice spacing before it is reported as non-uniform
SPACING_TOLERANCE = 0.05
#: bytes of decoded volume (all series of one study together) the reader may allocate: a
#: 3-phase 512 x 512 x 1000 study in int16 is 1.5 GiB; a header claiming more is refused before allocating
MAX_STUDY_BYTES: int = 4 * 1024**3
#: pixel data element -> bits per sample (None: from (0028,0100) BitsAllocated)
_PIXEL_BITS: dict[str, int | None] = {"PixelData": None, "FloatPixelData": 32, "DoubleFloatPixelData": 64}
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
    rescale: tuple[float, float] = (1.0, 0.0)  # checked (0028,1053) slope, (0028,1052) intercept
    notes: list[str] = field(default_factory=list)  # header values that were malformed and ignored


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

    Notes
    -----
    Zip members are inflated into a private scratch folder that is removed before this returns;
    decoded volumes are held within :data:`MAX_STUDY_BYTES`, checked before each is allocated.
    """
    scratch = Scratch()
    try:
        return _load_study(source, deidentifier or Deidentifier(), scratch)
    finally:
        scratch.close()


def _load_study(source, deid: Deidentifier, scratch: Scratch) -> Study:
    budget = _MemoryBudget(MAX_STUDY_BYTES)
    files = _expand_dicomdir(source, scratch)
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
                budget.take(grey.nbytes, f"2-D image {sf.name} of {grey.shape[0]} x {grey.shape[1]} pixels")
            except InputError as error:
                skipped.append(SkippedFile(sf.name, str(error)))
                continue
            image_series.append(_image_series(sf.name, grey, deid))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns per invalid value; reasons say it once
                result = _read_instances(sf, deid, headers, raw_times)
        except Exception as error:  # noqa: BLE001 - a bad file never sinks the upload; the reason names it
            result = SkippedFile(sf.name,
                                 f"header cannot be read (unexpected {type(error).__name__}: {error})")
        if isinstance(result, SkippedFile):
            skipped.append(result)
        else:
            instances.extend(result)

    groups: dict[str, list[_Instance]] = defaultdict(list)
    for inst in instances:
        groups[inst.series_key].append(inst)
    series: list[CTSeries] = []
    for key, members in groups.items():
        built = _build_series(key, members, headers[key], skipped, budget)
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

def _expand_dicomdir(source, scratch: Scratch) -> list[SourceFile]:
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
    return collect_sources(source, scratch=scratch)


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
    pixel_keyword = next((k for k in _PIXEL_BITS if k in ds), None)
    if pixel_keyword is None:
        from pydicom.uid import UID

        sop = header_text(ds, "SOPClassUID")
        sop = UID(sop).name if sop else "unknown SOP class"
        return SkippedFile(sf.name, f"not an image ({sop}, no pixel data)")
    image_type = {v.upper() for v in header_texts(ds, "ImageType")}
    if image_type & LOCALIZER_TYPES:
        return SkippedFile(sf.name, f"localizer/scout image (ImageType {'/'.join(sorted(image_type))})")
    notes: list[str] = []
    try:
        samples = _checked(ds, "SamplesPerPixel", notes) or 1
        if samples != 1:
            photometric = header_text(ds, "PhotometricInterpretation", "?")
            return SkippedFile(sf.name, f"colour image (SamplesPerPixel {samples}, PhotometricInterpretation "
                               f"{photometric}); CT slices are greyscale")
        rows, columns = _checked(ds, "Rows", notes), _checked(ds, "Columns", notes)
        if rows is None or columns is None:
            return SkippedFile(sf.name, "image without (0028,0010) Rows / (0028,0011) Columns")
        n_frames = _checked(ds, "NumberOfFrames", notes) or 1
        bits = _PIXEL_BITS[pixel_keyword] or _checked(ds, "BitsAllocated", notes)
        if bits is None:
            return SkippedFile(sf.name, "image without (0028,0100) BitsAllocated")
        _check_transfer_syntax(ds)
        _check_pixel_data_size(ds, pixel_keyword, rows, columns, bits, n_frames)
        # pydicom's decoder reads these itself: it must see the checked values, not the file's text
        ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, samples
        if pixel_keyword == "PixelData":
            ds.BitsAllocated = bits
        if "NumberOfFrames" in ds:
            ds.NumberOfFrames = n_frames
        rescale = _rescale(ds, notes)
        if n_frames > 1:
            instances = _frames(sf, ds, rows, columns, n_frames, rescale, notes)
        else:
            instances = [_Instance(
                name=sf.name, ds=ds, frame=None, series_key="", rows=rows, columns=columns,
                position=_position(_checked(ds, "ImagePositionPatient", notes)),
                orientation=_orientation(_checked(ds, "ImageOrientationPatient", notes)),
                pixel_spacing=_checked(ds, "PixelSpacing", notes),
                instance_number=_checked(ds, "InstanceNumber", notes), rescale=rescale,
            )]
    except InputError as error:  # a HeaderValueError, or pixel data that does not match the header
        return SkippedFile(sf.name, str(error))

    original_uid = header_text(ds, "SeriesInstanceUID")
    key = deid.uid(original_uid) if original_uid else "unknown-series"
    if key not in headers:
        header_notes: list[str] = []
        header = deid.kept_header(ds, notes=header_notes)
        from nbrisk_core.imaging.phases import description_keywords

        header["description_keywords"] = description_keywords(
            " ".join(header_text(ds, k) for k in ("SeriesDescription", "ProtocolName")))
        header["series_label"] = _series_label(ds, header)
        header["header_notes"] = header_notes
        if not original_uid:
            header["missing_series_uid"] = True
        headers[key] = header
        raw_times[key] = _acquisition_seconds(ds, header_notes)
    if header_text(ds, "BurnedInAnnotation").strip().upper() == "YES":
        headers[key]["BurnedInAnnotation"] = "YES"  # (0028,0301) on any image of the series (burned_in.py)
    for instance in instances:
        instance.series_key = key
        instance.notes = notes
    return instances


def _checked(ds, keyword: str, notes: list[str], where: str = ""):
    """:func:`~nbrisk_core.imaging.header.header_value`, with the rule's ``on_bad`` applied.

    A malformed value whose rule says ``ignore`` is returned as None (absent) and noted for the
    series' warnings; one whose rule says ``skip`` raises, and the caller skips the file.
    """
    try:
        return header_value(ds, keyword, where)
    except HeaderValueError as error:
        if error.on_bad != IGNORE:
            raise
        notes.append(f"{error}; ignored")
        return None


def _position(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


def _orientation(value, where: str = "") -> np.ndarray | None:
    """(0020,0037) as an array, refused unless its row and column cosines are unit vectors at right angles."""
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    row, column = array[:3], array[3:]
    norms = (np.linalg.norm(row), np.linalg.norm(column))
    if min(norms) < 0.9 or max(norms) > 1.1 or abs(float(np.dot(row, column))) > 0.1:
        shown = "\\".join(f"{v:g}" for v in array)
        raise HeaderValueError("ImageOrientationPatient", repr(shown),
                               "two unit direction cosines (row, column) at right angles", where)
    return array


def _rescale(ds, notes: list[str], where: str = "") -> tuple[float, float]:
    """(0028,1053) RescaleSlope and (0028,1052) RescaleIntercept, 1 and 0 when absent (PS3.3 C.11.1)."""
    slope = _checked(ds, "RescaleSlope", notes, where)
    intercept = _checked(ds, "RescaleIntercept", notes, where)
    if slope == 0:
        raise HeaderValueError("RescaleSlope", "'0'",
                               "a non-zero number (every pixel would be the intercept)", where)
    return (1.0 if slope is None else float(slope)), (0.0 if intercept is None else float(intercept))


def _check_transfer_syntax(ds) -> None:
    from pydicom.pixels import get_decoder

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise InputError(f"transfer syntax {syntax.name} ({syntax}) is not supported") from None
    except Exception as error:  # noqa: BLE001 - a malformed UID
        raise InputError(f"transfer syntax {str(syntax)[:64]!r} cannot be used ({error})") from None
    if not decoder.is_available:
        raise InputError(f"no installed decoder for transfer syntax {syntax.name} ({syntax})")


def _check_pixel_data_size(ds, keyword: str, rows: int, columns: int, bits: int, n_frames: int) -> None:
    """Refuse a header that claims more frames than the pixel data holds, before anything is allocated.

    Native (uncompressed) pixel data holds exactly ``frames x rows x columns x bits / 8`` bytes
    (PS3.5 8.1.1), so its length, known without reading it, bounds the frames; compressed
    (encapsulated) pixel data holds at least one fragment per frame (PS3.5 A.4).
    """
    from pydicom.tag import Tag

    element = ds.get_item(Tag(keyword), keep_deferred=True)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    length = getattr(element, "length", None)
    if length is None:
        value = element.value
        length = 0xFFFFFFFF if isinstance(value, list) else len(value or b"")
    encapsulated = length == 0xFFFFFFFF or bool(syntax is not None and syntax.is_encapsulated)
    if encapsulated and n_frames == 1:
        return  # one frame needs one fragment; the decoder reports an empty one (data stays deferred)
    if encapsulated:
        import io

        from pydicom.encaps import parse_basic_offsets, parse_fragments

        try:
            buffer = io.BytesIO(getattr(ds, keyword))
            parse_basic_offsets(buffer)
            fragments = parse_fragments(buffer)[0]
        except Exception as error:  # noqa: BLE001 - a broken encapsulation is a broken file
            raise InputError(f"(7FE0,0010) PixelData is not valid encapsulated data ({error})") from None
        if n_frames > fragments:
            raise InputError(f"(0028,0008) NumberOfFrames = {n_frames}, but the compressed (7FE0,0010) "
                             f"PixelData holds {fragments} fragments (at least one per frame)")
        return
    needed = -(-n_frames * rows * columns * bits // 8)
    frame = -(-rows * columns * bits // 8)
    # less than declared cannot be decoded; a whole frame more than declared means the header is wrong
    if length < needed or length >= needed + max(frame, 2):
        raise InputError(f"pixel data holds {length} bytes, but NumberOfFrames {n_frames} x Rows {rows} x "
                         f"Columns {columns} x {bits} bits needs {needed}: the header does not match the "
                         "pixel data")


def _frames(sf: SourceFile, ds, rows: int, columns: int, n_frames: int, rescale, notes) -> list[_Instance]:
    """The frames of a multi-frame object (enhanced CT: geometry in the functional groups)."""
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    orientation = _orientation(_checked(ds, "ImageOrientationPatient", notes))
    spacing = _checked(ds, "PixelSpacing", notes)
    rescale_shared = None
    if shared is not None:
        shared_orientation = _orientation(
            _group_value(shared, "PlaneOrientationSequence", "ImageOrientationPatient", notes, " (shared)"),
            " (shared)")
        orientation = shared_orientation if shared_orientation is not None else orientation
        spacing = _group_value(shared, "PixelMeasuresSequence", "PixelSpacing", notes, " (shared)") or spacing
        rescale_shared = _group_rescale(shared, notes, " (shared)")
    base_position = _position(_checked(ds, "ImagePositionPatient", notes))
    step = _checked(ds, "SpacingBetweenSlices", notes) or _checked(ds, "SliceThickness", notes) or 0.0
    out = []
    for index in range(n_frames):
        where = f" (frame {index + 1})"
        group = per_frame[index] if index < len(per_frame) else None
        position = _position(
            _group_value(group, "PlanePositionSequence", "ImagePositionPatient", notes, where))
        frame_orientation = _orientation(
            _group_value(group, "PlaneOrientationSequence", "ImageOrientationPatient", notes, where), where)
        frame_orientation = frame_orientation if frame_orientation is not None else orientation
        if position is None and base_position is not None and frame_orientation is not None and step:
            normal = np.cross(frame_orientation[:3], frame_orientation[3:])
            position = base_position + index * step * normal
        frame_rescale = _group_rescale(group, notes, where) or rescale_shared or rescale
        out.append(_Instance(
            name=f"{sf.name}[frame {index + 1}]", ds=ds, frame=index, series_key="", rows=rows,
            columns=columns, position=position, orientation=frame_orientation, pixel_spacing=spacing,
            instance_number=index + 1, rescale=frame_rescale,
        ))
    return out


def _group_item(group, sequence: str):
    """The first item of a functional group's ``sequence``, or None."""
    if group is None:
        return None
    try:
        items = group.get(sequence)
        return items[0] if items else None
    except (TypeError, IndexError, AttributeError):
        return None


def _group_value(group, sequence: str, keyword: str, notes: list[str], where: str):
    item = _group_item(group, sequence)
    return None if item is None else _checked(item, keyword, notes, where)


def _group_rescale(group, notes: list[str], where: str) -> tuple[float, float] | None:
    item = _group_item(group, "PixelValueTransformationSequence")
    if item is None or "RescaleSlope" not in item or "RescaleIntercept" not in item:
        return None
    return _rescale(item, notes, where)


def _acquisition_seconds(ds, notes: list[str]) -> float | None:
    for keyword in ("AcquisitionTime", "ContentTime", "SeriesTime"):
        seconds = _checked(ds, keyword, notes)
        if seconds is not None:
            return seconds
    return None


def _series_label(ds, header: dict) -> str:
    """A display label without free text: series number, modality and the phase keywords found."""
    number = header.get("SeriesNumber")
    keywords = header.get("description_keywords") or []
    parts = [f"series {number}" if number is not None else "series", header_text(ds, "Modality")]
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

def _build_series(key: str, members: list[_Instance], header: dict, skipped: list[SkippedFile],
                  budget: _MemoryBudget) -> CTSeries | None:
    series_warnings: list[str] = _note_warnings(header.pop("header_notes", []), members)
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

    dtype = _volume_dtype(members)
    try:
        budget.take(len(members) * rows * columns * dtype.itemsize,
                    f"{len(members)} slices of {rows} x {columns} ({dtype.name})")
    except InputError as error:
        skipped.extend(SkippedFile(m.name, str(error)) for m in members)
        return None
    hu, ok, read_errors = _read_pixels(members, rows, columns, dtype, budget)
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


def _note_warnings(header_notes: list[str], members: list[_Instance]) -> list[str]:
    """One warning per malformed-and-ignored header value: the series header's, then the slices' (counted)."""
    counts = Counter(note for m in members for note in dict.fromkeys(m.notes))
    out = list(dict.fromkeys(header_notes))
    for note, n in counts.items():
        if note not in out:
            out.append(note if n == 1 else f"{note} (on {n} slices)")
    return out


def _positions_along_normal(members: list[_Instance], orientation, header) -> tuple[np.ndarray, str | None]:
    if orientation is not None and all(m.position is not None for m in members):
        normal = np.cross(orientation[:3], orientation[3:])
        return np.array([float(np.dot(m.position, normal)) for m in members]), None
    # fallback: (0020,0013) InstanceNumber, spaced by the slice thickness when known
    step = float(header.get("SpacingBetweenSlices") or header.get("SliceThickness") or 1.0)  # checked
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


def _volume_dtype(members: list[_Instance]):
    integral = all(float(m.rescale[0]).is_integer() and float(m.rescale[1]).is_integer() for m in members)
    integral = integral and not any("ModalityLUTSequence" in m.ds for m in members)
    return np.dtype(np.int16 if integral else np.float32)


def _read_pixels(members: list[_Instance], rows: int, columns: int, dtype, budget: _MemoryBudget):
    """Decode and rescale slice by slice into one preallocated volume (peak memory ~ 1 volume)."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_modality_lut, pixel_array

    hu = np.empty((len(members), rows, columns), dtype=dtype)
    ok = np.zeros(len(members), dtype=bool)
    errors: list[tuple[str, str]] = []
    frames_left = Counter(id(m.ds) for m in members)
    for i, member in enumerate(members):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stored = pixel_array(member.ds, index=member.frame)
                if member.frame is not None and stored.ndim == 3 and stored.shape[0] == 1:
                    stored = stored[0]
                if "ModalityLUTSequence" in member.ds:
                    lut_source = member.ds
                else:
                    # the checked rescale, never pydicom's own reading of the (possibly malformed) header
                    lut_source = Dataset()
                    lut_source.RescaleSlope, lut_source.RescaleIntercept = member.rescale
                values = apply_modality_lut(stored, lut_source)
            if values.shape != (rows, columns):
                raise ValueError(f"decoded shape {values.shape} != {rows} x {columns}")
            if hu.dtype == np.int16 and (values.min() < -32768 or values.max() > 32767):
                # rare (non-CT 16-bit data): widen the volume once rather than clip values
                budget.take(hu.size * 4, f"{len(members)} slices of {rows} x {columns} widened to float32")
                hu = hu.astype(np.float32)
            hu[i] = values
            ok[i] = True
        except Exception as error:  # noqa: BLE001 - any decode failure is reported per file
            errors.append((member.name, f"pixel data cannot be decoded ({type(error).__name__}: {error})"))
        finally:
            frames_left[id(member.ds)] -= 1
            if frames_left[id(member.ds)] == 0 and "PixelData" in member.ds:
                # drop the decoded bytes now, so the study is held once (in ``hu``), not twice
                del member.ds.PixelData
    return hu, ok, errors


class _MemoryBudget:
    """Bytes of decoded volume one :func:`load_study` may still allocate (:data:`MAX_STUDY_BYTES`)."""

    def __init__(self, limit: int):
        self.limit = self.left = int(limit)

    def take(self, n_bytes: int, what: str) -> None:
        if n_bytes > self.left:
            raise InputError(f"{what} need {format_bytes(n_bytes)} of memory; one study may use at most "
                             f"{format_bytes(self.limit)} ({format_bytes(self.left)} left): refused before "
                             "allocating")
        self.left -= n_bytes


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
    tilt = float(header.get("GantryDetectorTilt") or 0.0)  # checked in kept_header
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
