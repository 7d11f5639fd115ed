"""The one checked way to read a number (or a time) out of a DICOM header.

Files from scanners and PACS exports carry malformed values: an IS of ``'1A'``, a DS of ``'nan'``,
an empty Type 1 attribute, two values where one is expected, an InstanceNumber of ``1e9999``
(pydicom itself raises ``OverflowError`` on that one). Every header value the reader converts goes
through :func:`header_value`, which checks it against :data:`HEADER_RULES` (what it must be, its
range, and what happens to a file when it is malformed) and raises :class:`HeaderValueError`
naming the attribute, the value and what was expected. The rule's ``on_bad`` says what the reader
does with that error:

* ``"skip"``: no safe default exists (the image size, the rescale to HU, the slice's position),
  so the file is skipped with the error as its reason;
* ``"ignore"``: the value is treated as absent, as the reader already does for a missing one (with
  the warning it gives then), and the series gets a warning naming the attribute and the value.

Absent and empty values are not errors: :func:`header_value` returns None and the caller applies
its documented default. :func:`header_text` reads string attributes without ever raising.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from nbrisk_core.errors import InputError

SKIP = "skip"
IGNORE = "ignore"


@dataclass(frozen=True)
class HeaderRule:
    """What one attribute must hold.

    ``kind`` is ``"int"``, ``"float"``, ``"time"`` (a DICOM TM) or ``"age"`` (a DICOM AS); ``count``
    the number of values
    (1, or e.g. 2 for PixelSpacing); ``low``/``high`` the accepted range of each value (inclusive,
    ``low_open`` makes the lower bound exclusive); ``choices`` a closed set of accepted values.
    ``identifying`` values (clock times) are never echoed in a message.
    """

    tag: str
    kind: str
    on_bad: str
    count: int = 1
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[float, ...] | None = None
    identifying: bool = False

    def expected(self) -> str:
        what = {"int": "integer", "float": "number", "time": "DICOM time HHMMSS.FFFFFF",
                "age": "DICOM age nnnD, nnnW, nnnM or nnnY"}[self.kind]
        if self.count > 1:
            what = f"{self.count} {what}s separated by '\\'"
        elif self.kind in ("int", "float"):
            what = f"one {what}"
        if self.choices is not None:
            return f"{what} in {{{', '.join(f'{c:g}' for c in self.choices)}}}"
        if self.low is not None and self.high is not None:
            if self.low_open:
                return f"{what} > {self.low:g} and <= {self.high:g}"
            return f"{what} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        return f"finite {what}" if self.kind in ("int", "float") else what


_MM = 1e6  # positions and distances beyond a kilometre are not a patient
#: Every header value the reader converts, with its check and what a malformed value does.
HEADER_RULES: dict[str, HeaderRule] = {
    # image size and pixel layout: no default, a wrong value would mis-read the pixel data
    "Rows": HeaderRule("(0028,0010)", "int", SKIP, low=1, high=65535),
    "Columns": HeaderRule("(0028,0011)", "int", SKIP, low=1, high=65535),
    "NumberOfFrames": HeaderRule("(0028,0008)", "int", SKIP, low=1, high=2**31 - 1),
    "SamplesPerPixel": HeaderRule("(0028,0002)", "int", SKIP, low=1, high=4),
    "BitsAllocated": HeaderRule("(0028,0100)", "int", SKIP, choices=(1, 8, 16, 32, 64)),
    # HU: a wrong rescale gives wrong numbers that look right
    "RescaleSlope": HeaderRule("(0028,1053)", "float", SKIP, low=-1e6, high=1e6),
    "RescaleIntercept": HeaderRule("(0028,1052)", "float", SKIP, low=-1e6, high=1e6),
    # geometry of the slice in the patient: a wrong one puts the slice in the wrong place
    "ImagePositionPatient": HeaderRule("(0020,0032)", "float", SKIP, count=3, low=-_MM, high=_MM),
    "ImageOrientationPatient": HeaderRule("(0020,0037)", "float", SKIP, count=6, low=-1.01, high=1.01),
    # a documented fallback exists for these (see the reader): malformed = absent, with a warning
    "PixelSpacing": HeaderRule("(0028,0030)", "float", IGNORE, count=2, low=0, low_open=True, high=1000),
    "SliceThickness": HeaderRule("(0018,0050)", "float", IGNORE, low=0, low_open=True, high=1000),
    "SpacingBetweenSlices": HeaderRule("(0018,0088)", "float", IGNORE, low=0, low_open=True, high=1000),
    "InstanceNumber": HeaderRule("(0020,0013)", "int", IGNORE, low=-(2**31), high=2**31 - 1),
    "SeriesNumber": HeaderRule("(0020,0011)", "int", IGNORE, low=-(2**31), high=2**31 - 1),
    "GantryDetectorTilt": HeaderRule("(0018,1120)", "float", IGNORE, low=-90, high=90),
    "KVP": HeaderRule("(0018,0060)", "float", IGNORE, low=0, low_open=True, high=1000),
    "ContrastBolusVolume": HeaderRule("(0018,1041)", "float", IGNORE, low=0, high=1e4),
    "PatientSize": HeaderRule("(0010,1020)", "float", IGNORE, low=0, low_open=True, high=3),
    "PatientWeight": HeaderRule("(0010,1030)", "float", IGNORE, low=0, low_open=True, high=1000),
    "PatientAge": HeaderRule("(0010,1010)", "age", IGNORE),
    "AcquisitionTime": HeaderRule("(0008,0032)", "time", IGNORE, identifying=True),
    "ContentTime": HeaderRule("(0008,0033)", "time", IGNORE, identifying=True),
    "SeriesTime": HeaderRule("(0008,0031)", "time", IGNORE, identifying=True),
}


class HeaderValueError(InputError):
    """A header value that does not fit its :class:`HeaderRule`; the message names both."""

    def __init__(self, keyword: str, shown: str, expected: str, where: str = ""):
        rule = HEADER_RULES.get(keyword)
        tag = f"{rule.tag} " if rule else ""
        super().__init__(f"{tag}{keyword}{where} = {shown}: expected {expected}", source=keyword)
        self.keyword = keyword
        self.on_bad = rule.on_bad if rule else SKIP


def header_value(ds, keyword: str, where: str = ""):
    """The checked value of ``keyword`` in ``ds``: int, float, a tuple of them, seconds of day, or None.

    Parameters
    ----------
    ds : pydicom Dataset (or a sequence item)
    keyword : str
        A key of :data:`HEADER_RULES`.
    where : str, optional
        Added to the attribute's name in messages (e.g. ``" (frame 3)"``).

    Returns
    -------
    None when the attribute is absent or empty; else an ``int`` / ``float`` (``count`` 1), a tuple
    of ``count`` floats, seconds since midnight (``kind`` ``"time"``) or an age string (``"age"``).

    Raises
    ------
    HeaderValueError
        The value cannot be converted, has another number of values, is NaN/infinite, or is
        outside the rule's range.

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset(); ds.Rows = 512
    >>> header_value(ds, "Rows"), header_value(ds, "Columns")
    (512, None)
    """
    rule = HEADER_RULES[keyword]
    try:
        value = _get(ds, keyword)
    except Exception:  # noqa: BLE001 - pydicom raises ValueError/OverflowError/... converting bad text
        raise HeaderValueError(keyword, _shown_raw(ds, keyword, rule), rule.expected(), where) from None
    if value is None or (isinstance(value, str | bytes) and not value.strip()):
        return None
    values = list(value) if _is_multi(value) else [value]
    if not values:
        return None
    try:
        if len(values) != rule.count:
            raise ValueError
        if rule.kind == "time":
            return _seconds_of_day(values[0])
        if rule.kind == "age":
            return _age_string(values[0])
        numbers = [_number(v) for v in values]
        for number in numbers:
            _check_range(number, rule)
        if rule.kind == "int":
            numbers = [int(n) for n in numbers]
    except (TypeError, ValueError, OverflowError):
        raise HeaderValueError(keyword, _shown(value, rule), rule.expected(), where) from None
    return numbers[0] if rule.count == 1 else tuple(numbers)


def header_text(ds, keyword: str, default: str = "") -> str:
    """A string attribute as text (``default`` when absent, empty or unreadable); never raises."""
    try:
        value = _get(ds, keyword)
    except Exception:  # noqa: BLE001 - an unreadable descriptor is treated as absent
        return default
    if value is None:
        return default
    if _is_multi(value):
        return "\\".join(str(v) for v in value)
    return str(value) if str(value).strip() else default


def header_texts(ds, keyword: str) -> list[str]:
    """A multi-valued string attribute (e.g. (0008,0008) ImageType) as a list; never raises."""
    try:
        value = _get(ds, keyword)
    except Exception:  # noqa: BLE001
        return []
    if value is None:
        return []
    return [str(v) for v in value] if _is_multi(value) else [str(value)]


def _get(ds, keyword: str):
    # pydicom warns on every invalid value it converts; the reader reports them itself, once, by name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ds.get(keyword)


def _is_multi(value) -> bool:
    return isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"


def _number(value) -> float:
    if isinstance(value, bool) or isinstance(value, bytes | bytearray):
        raise TypeError
    number = float(str(value).strip()) if isinstance(value, str) else float(value)
    if not math.isfinite(number):
        raise ValueError
    return number


def _check_range(number: float, rule: HeaderRule) -> None:
    if rule.kind == "int" and not float(number).is_integer():
        raise ValueError
    if rule.choices is not None and number not in rule.choices:
        raise ValueError
    if rule.low is not None and (number <= rule.low if rule.low_open else number < rule.low):
        raise ValueError
    if rule.high is not None and number > rule.high:
        raise ValueError


def _seconds_of_day(value) -> float:
    """Seconds since midnight of a DICOM TM (PS3.5 6.2: ``HH``, ``HHMM``, ``HHMMSS``, ``HHMMSS.F{1,6}``)."""
    text = str(value).strip().replace(":", "")  # ACR-NEMA 2.0 wrote HH:MM:SS
    head, _, fraction = text.partition(".")
    if len(head) not in (2, 4, 6) or not head.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError
    hours, minutes = int(head[0:2]), int(head[2:4] or 0)
    seconds = float(f"{head[4:6] or 0}.{fraction or 0}")
    if hours > 23 or minutes > 59 or seconds >= 61:  # 60 is a leap second
        raise ValueError
    return hours * 3600 + minutes * 60 + seconds


def _age_string(value) -> str:
    """A DICOM Age String (PS3.5 6.2, AS): three digits and D, W, M or Y."""
    text = str(value).strip().upper()
    if len(text) != 4 or not text[:3].isdigit() or text[3] not in "DWMY":
        raise ValueError
    return text


def _shown(value, rule: HeaderRule) -> str:
    if rule.identifying:
        return "(value withheld: clock times identify a visit)"
    text = "\\".join(str(v) for v in value) if _is_multi(value) else str(value)
    if isinstance(value, bytes | bytearray):
        text = value.decode("latin-1")
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _shown_raw(ds, keyword: str, rule: HeaderRule) -> str:
    """The stored bytes of an element pydicom could not convert."""
    try:
        from pydicom.datadict import tag_for_keyword
        from pydicom.tag import Tag

        raw = ds.get_item(Tag(tag_for_keyword(keyword)), keep_deferred=True)
        value = getattr(raw, "value", None)
    except Exception:  # noqa: BLE001
        value = None
    if isinstance(value, bytes | bytearray):
        value = value.decode("latin-1").strip(" \x00")
    return _shown(value if value is not None else "?", rule)


__all__ = ["HEADER_RULES", "IGNORE", "SKIP", "HeaderRule", "HeaderValueError", "header_text", "header_texts",
           "header_value"]
