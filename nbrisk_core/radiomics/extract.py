"""One call from (image, mask, spacing) to IBSI features: :class:`Settings` and :func:`extract`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from nbrisk_core.errors import InputError
import nbrisk_core.radiomics.firstorder as firstorder  # not `from nbrisk_core.radiomics import`: no cycle
import nbrisk_core.radiomics.processing as processing
import nbrisk_core.radiomics.shape as shape
import nbrisk_core.radiomics.texture as texture


@dataclass(frozen=True)
class Settings:
    """IBSI image processing and feature settings (see docs/radiomics.md).

    ``new_spacing`` (mm, ``(y, x)`` for in-plane or ``(z, y, x)``) resamples first (``None``: as is);
    ``interpolation_order`` 1 = (bi/tri)linear, 3 = cubic; ``round_intensities`` rounds resampled CT to
    integer HU. ``resegment`` = ``(low, high)`` HU range kept in the intensity mask (``None`` = no range),
    ``outlier_sigma`` drops voxels beyond mean +- n SD. ``discretisation`` ``"fbs"`` (``bin_width``) or
    ``"fbn"`` (``n_bins``) or ``"none"``; ``aggregation`` one of :data:`texture.AGGREGATIONS`.
    """

    new_spacing: tuple | None = None
    interpolation_order: int = 1
    round_intensities: bool = True
    resegment: tuple | None = None
    outlier_sigma: float | None = None
    discretisation: str = "fbs"
    bin_width: float = 25.0
    n_bins: int = 32
    aggregation: str = "2D_avg"
    families: tuple = ("stat", "ih", "ivh", "loc", "morph", "shape2d", "cm", "rlm", "szm", "dzm", "ngt",
                       "ngl")

    def as_dict(self) -> dict:
        return asdict(self)


#: every implemented feature -> its IBSI identifier (features without one are NBRisk's own)
IBSI_CODES: dict[str, str] = {**firstorder.IBSI_CODES, **shape.IBSI_CODES, **texture.IBSI_CODES}


def extract(image, mask, spacing, settings: Settings | None = None) -> dict[str, float]:
    """IBSI features of the region ``mask`` of ``image``.

    ``image``/``mask`` are 2-D ``(y, x)`` or 3-D ``(z, y, x)``; ``spacing`` in mm in the same order
    (a 2-D image takes ``(y, x)``). A 2-D image supports the ``2D_*`` aggregations and gets 2-D shape
    features; 3-D morphology is computed for 3-D input only.
    """
    s = settings or Settings()
    two_d_input = np.asarray(image).ndim == 2
    image, mask, spacing = processing.check_pair(image, mask, spacing)
    if s.aggregation not in texture.AGGREGATIONS:
        raise InputError(f"aggregation: expected one of {', '.join(texture.AGGREGATIONS)}, "
                         f"got {s.aggregation!r}")
    if two_d_input and not s.aggregation.startswith("2D"):
        raise InputError(f"aggregation {s.aggregation!r}: a 2-D slice takes a 2D_* aggregation")
    if s.new_spacing is not None:
        image, mask, spacing = processing.resample(
            image, mask, spacing, s.new_spacing, order=s.interpolation_order,
            in_plane_only=two_d_input or s.aggregation.startswith("2D"),
            round_intensities=s.round_intensities)
        if not mask.any():
            raise InputError(f"mask: empty after resampling to {s.new_spacing} mm")
    morph_mask = mask
    int_mask = mask
    if s.resegment is not None:
        low, high = s.resegment
        int_mask = processing.resegment(image, int_mask, low, high)
    if s.outlier_sigma is not None:
        int_mask = processing.outlier_filter(image, int_mask, s.outlier_sigma)
    if not int_mask.any():
        raise InputError(f"mask: no voxel left after re-segmentation to {s.resegment}")
    low = s.resegment[0] if s.resegment is not None else None
    levels = processing.discretise(image, int_mask, s.discretisation, s.bin_width, s.n_bins, low)
    fam = set(s.families)
    out: dict[str, float] = {}
    if "stat" in fam:
        out.update(firstorder.statistics(image[int_mask]))
    if "ih" in fam:
        out.update(firstorder.histogram(levels[int_mask]))
    if "ivh" in fam:
        rng = s.resegment or (None, None)
        out.update(firstorder.intensity_volume(np.round(image[int_mask]), *rng))
    if "loc" in fam:
        out.update(firstorder.local_intensity(image, int_mask, spacing))
    if "morph" in fam and not two_d_input:
        out.update(shape.morphology(image, morph_mask, int_mask, spacing))
    if "shape2d" in fam and two_d_input:
        out.update(shape.shape_2d(morph_mask[0], spacing))
    tex = [f for f in ("cm", "rlm", "szm", "dzm", "ngt", "ngl") if f in fam]
    if tex:
        out.update(texture.texture_features(levels, morph_mask, s.aggregation, tex))
    return out
