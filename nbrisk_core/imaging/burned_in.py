"""Burned-in annotation: identifying text drawn into the pixels, found before a slice is stored.

De-identifying the header (:mod:`.deid`) does nothing for text that is part of the image: a
patient name, a date or an accession number written into the pixels by a scanner, a PACS
screenshot or a secondary capture. Two signals are used:

* the header: (0028,0301) BurnedInAnnotation = ``YES`` on any image of the series
  (PS3.3 C.7.6.1.1.7; the reader keeps it in ``CTSeries.header["BurnedInAnnotation"]``);
* the pixels (:func:`find_pixel_text`): text-like marks outside the body. In an axial CT slice
  everything outside the patient is air (about -1000 HU) or the table; scanner text is drawn
  there, at a bright, usually saturated grey level, as many small, thin, separate strokes (one per
  glyph) on a line. The heuristic takes the body as the largest bright-enough connected region
  (holes filled, a margin added), then counts, outside it, bright connected marks the size of a
  glyph whose pixels are mostly stroke edge (an erosion removes at least half of them), and
  flags the slice when :data:`MIN_TEXT_MARKS` such marks lie on a common text line. It is cheap
  (a few ``scipy.ndimage`` passes on one slice) and errs on the side of flagging; text written
  over the body itself is not found, which is why the header flag is read as well.

Before a slice is stored (:func:`clear_for_storage`) a flagged slice is refused unless it is
masked (:func:`mask_outside_body`: everything outside the body set to air) or a reviewer confirms
that it shows no identifying text; the decision, who made it and when are kept with the slice
(``burned_in_annotation`` in its metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
from scipy import ndimage

from nbrisk_core.case import ChosenSlice
from nbrisk_core.errors import InputError

#: key of a chosen slice's (and a stored slice's metadata's) burned-in annotation record
META_KEY = "burned_in_annotation"
#: decisions a reviewer can take for a flagged slice before it is stored
DECISIONS = ("mask", "confirm")
#: foreground (body) threshold and text threshold, HU and 8-bit grey (a W400/L40 export: 0 = -160 HU)
BODY_LEVEL = {"hu": -500.0, "grey": 10.0}
TEXT_LEVEL = {"hu": 200.0, "grey": 200.0}
#: margin around the body kept when masking (pixels): skin and a little air stay
BODY_MARGIN = 3
#: how many glyph-like marks on one text line make a slice "text-bearing"
MIN_TEXT_MARKS = 3


@dataclass(frozen=True)
class BurnedInFinding:
    """What was found in one slice.

    Attributes
    ----------
    header : bool
        The series' (0028,0301) BurnedInAnnotation is YES.
    pixel_text : bool
        :func:`find_pixel_text` found a line of text-like marks outside the body.
    text_marks : int
        How many text-like marks it found (on the longest text line).
    """

    header: bool
    pixel_text: bool
    text_marks: int = 0

    @property
    def flagged(self) -> bool:
        return self.header or self.pixel_text

    def reasons(self) -> list[str]:
        out = []
        if self.header:
            out.append("its header says (0028,0301) BurnedInAnnotation = YES")
        if self.pixel_text:
            out.append(f"{self.text_marks} text-like marks outside the body in the pixels")
        return out

    def to_dict(self) -> dict:
        return {**asdict(self), "flagged": self.flagged}


def _levels(plane: np.ndarray, is_hu: bool) -> tuple[float, float]:
    kind = "hu" if is_hu else "grey"
    return BODY_LEVEL[kind], TEXT_LEVEL[kind]


def body_mask(plane: np.ndarray, is_hu: bool = True, margin: int = BODY_MARGIN) -> np.ndarray:
    """The patient in an axial slice: largest connected region above the body level, holes filled,
    grown by ``margin`` pixels (all False when nothing is above the level)."""
    body_level, _ = _levels(plane, is_hu)
    foreground = np.asarray(plane, dtype=np.float32) > body_level
    labels, n = ndimage.label(foreground)
    if n == 0:
        return foreground
    sizes = ndimage.sum_labels(foreground, labels, index=np.arange(1, n + 1))
    body = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)
    return ndimage.binary_dilation(body, iterations=margin) if margin else body


def find_pixel_text(plane: np.ndarray, is_hu: bool = True) -> int:
    """The number of text-like marks on the longest text line outside the body (0 when none).

    A mark is a bright connected component (8-connected, above the text level) outside
    :func:`body_mask` that is glyph-sized (3 to 2 % of the slice's pixels, at most 1/8 of its
    height and width) and thin (one 3x3 erosion removes at least half of its pixels: strokes, not
    blobs). Marks are on one text line when their vertical extents overlap; the slice holds text
    when one line has :data:`MIN_TEXT_MARKS` or more.

    Examples
    --------
    >>> plane = np.full((128, 128), -1000, np.int16); plane[40:90, 30:100] = 40
    >>> find_pixel_text(plane)
    0
    >>> for x in (4, 12, 20, 28):  # four "I"-like strokes in the top-left corner
    ...     plane[4:12, x] = 3071; plane[4, x - 1:x + 2] = 3071; plane[11, x - 1:x + 2] = 3071
    >>> find_pixel_text(plane)
    4
    """
    values = np.asarray(plane, dtype=np.float32)
    if values.ndim != 2 or values.size == 0:
        return 0
    _, text_level = _levels(values, is_hu)
    marks = (values > text_level) & ~body_mask(values, is_hu)
    labels, n = ndimage.label(marks, structure=np.ones((3, 3), bool))
    if n == 0:
        return 0
    rows, cols = values.shape
    eroded = ndimage.binary_erosion(marks, structure=np.ones((3, 3), bool))
    spans = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
        component = labels[box] == index
        area = int(component.sum())
        if not 3 <= area <= 0.02 * values.size or height > rows / 8 or width > cols / 8:
            continue
        if eroded[box][component].sum() > 0.5 * area:
            continue  # a blob, not a stroke
        spans.append((box[0].start, box[0].stop))
    best = 0
    for top, bottom in spans:
        best = max(best, sum(1 for t, b in spans if t < bottom and b > top))
    return best if best >= MIN_TEXT_MARKS else 0


def assess(plane: np.ndarray, is_hu: bool = True, header: Mapping | None = None) -> BurnedInFinding:
    """Header flag and pixel heuristic of one slice."""
    flag = str((header or {}).get("BurnedInAnnotation", "") or "").strip().upper() == "YES"
    marks = find_pixel_text(plane, is_hu)
    return BurnedInFinding(header=flag, pixel_text=marks > 0, text_marks=marks)


def mask_outside_body(plane: np.ndarray, is_hu: bool = True) -> np.ndarray:
    """A copy of ``plane`` with everything outside :func:`body_mask` set to air (-1000 HU or the
    image's minimum grey), which removes text in the corners and borders."""
    values = np.asarray(plane)
    background = -1000 if is_hu else int(values.min()) if values.size else 0
    out = values.copy()
    out[~body_mask(values, is_hu)] = np.asarray(background).astype(values.dtype)
    return out


def flagged_slices(chosen_slices: Mapping[str, ChosenSlice] | None) -> dict[str, BurnedInFinding]:
    """Phase -> finding for each chosen slice that is flagged and not yet cleared.

    A slice is cleared when its record says it was masked or confirmed. The finding is the one
    :func:`nbrisk_core.imaging.case.chosen_slice` recorded; a slice without one (a case saved
    before NBRisk checked) has its pixels checked here.
    """
    found = {}
    for phase, chosen in (chosen_slices or {}).items():
        record = chosen.burned_in or {}
        if record.get("decision") in DECISIONS:
            continue
        if "pixel_text" in record:  # assessed when the slice was chosen (the page reruns often)
            finding = BurnedInFinding(bool(record.get("header")), bool(record["pixel_text"]),
                                      int(record.get("text_marks") or 0))
        else:  # e.g. a case saved before NBRisk checked: look at the pixels now
            finding = assess(chosen.plane, chosen.is_hu)
        if finding.flagged:
            found[phase] = finding
    return found


def clear_for_storage(chosen_slices: Mapping[str, ChosenSlice] | None, decision: str | None,
                      reviewer: str | None, *, now: datetime | None = None) -> dict | None:
    """The chosen slices as they may be stored: flagged ones masked or confirmed, else refused.

    Parameters
    ----------
    chosen_slices : mapping phase -> ChosenSlice (``nbrisk_ui.state.CHOSEN_SLICES``)
    decision : {"mask", "confirm"} or None
        ``mask``: the area outside the body is blacked out (air) in the stored copy; ``confirm``:
        the reviewer has looked at the slices and they show no identifying text, stored as shown.
    reviewer : str
        Who decided (recorded with the slice, with the time).

    Returns
    -------
    dict or None
        A new mapping (the caller's slices are not changed). Each flagged slice's ``burned_in``
        holds the finding, ``decision``, ``decided_by``, ``decided_at``.

    Raises
    ------
    InputError
        A slice is flagged and no decision was given (nothing is stored), or the decision is unknown.
    """
    if chosen_slices is None:
        return None
    found = flagged_slices(chosen_slices)
    if not found:
        return dict(chosen_slices)
    if decision not in DECISIONS:
        if decision is not None:
            raise InputError(f"burned-in annotation decision = {decision!r} is not known "
                             f"(expected one of {', '.join(DECISIONS)})", source="burned_in_annotation")
        what = "; ".join(f"{p.upper()}: {', '.join(f.reasons())}" for p, f in found.items())
        raise InputError(f"burned-in annotation: the chosen slices may show identifying text ({what}); "
                         "the case is not saved. Mask the area outside the body, or confirm that you "
                         "have looked at the slices and they show no name or other identifying text",
                         source="burned_in_annotation")
    when = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    out = dict(chosen_slices)
    for phase, finding in found.items():
        chosen = out[phase]
        record = {**finding.to_dict(), "decision": decision, "decided_by": reviewer or "-",
                  "decided_at": when}
        changes = {}
        if decision == "mask":
            masked = mask_outside_body(chosen.plane, chosen.is_hu)
            changes["hu" if chosen.is_hu else "grey"] = masked
            record["text_marks_after_mask"] = find_pixel_text(masked, chosen.is_hu)
        out[phase] = chosen.replace(burned_in=record, **changes)
    return out
