"""IBSI 1 CT radiomics phantom, configurations A-E: every implemented feature within its published
tolerance (IBSI reference manual, "Reference data sets"; settings in docs/radiomics.md).

The phantom (60 x 201 x 204 voxels, CC BY-NC 3.0) is not stored in the repository. Point
``NBRISK_IBSI_CT_PHANTOM`` at a folder holding its ``phantom.nii.gz`` and ``mask.nii.gz`` (from
github.com/theibsi/data_sets, ``ibsi_1_ct_radiomics_phantom/nifti/{image,mask}/``); without it the tests
are skipped. About 50 s on 2 cores in all, hence slow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbrisk_core.radiomics import IBSI_CODES, Settings, extract
from tests.radiomics.ibsi import read_nifti, references, tolerance
from tests.radiomics.test_ibsi_digital_phantom import _reference_for

CONFIGS = {
    "A": (dict(resegment=(-500, 400), discretisation="fbs", bin_width=25),
          ("2D_avg", "2D_smrg", "2.5D_dmrg", "2.5D_mrg")),
    "B": (dict(new_spacing=(2.0, 2.0), resegment=(-500, 400), discretisation="fbn", n_bins=32),
          ("2D_avg", "2D_smrg", "2.5D_dmrg", "2.5D_mrg")),
    "C": (dict(new_spacing=(2.0, 2.0, 2.0), resegment=(-1000, 400), discretisation="fbs", bin_width=25),
          ("3D_avg", "3D_mrg")),
    "D": (dict(new_spacing=(2.0, 2.0, 2.0), outlier_sigma=3.0, discretisation="fbn", n_bins=32),
          ("3D_avg", "3D_mrg")),
    "E": (dict(new_spacing=(2.0, 2.0, 2.0), interpolation_order=3, resegment=(-1000, 400), outlier_sigma=3.0,
               discretisation="fbn", n_bins=32), ("3D_avg", "3D_mrg")),
}
#: IBSI computes the configurations' intensity-volume histograms on other grids (C: 2.5 HU bins, D and E:
#: 1000 bins), which nbrisk does not implement; A and B use 1 HU steps over the range, as nbrisk does
IVH_CONFIGS = ("A", "B")
#: measured deviations allowed three tolerances: none since the mask threshold's fix (config D had four,
#: docs/radiomics.md)
KNOWN_DEVIATIONS: set = set()


@pytest.fixture(scope="module")
def ct_phantom():
    folder = os.environ.get("NBRISK_IBSI_CT_PHANTOM")
    if not folder:
        pytest.skip("NBRISK_IBSI_CT_PHANTOM not set (folder with the IBSI 1 CT phantom's "
                    "phantom.nii.gz and mask.nii.gz)")
    image, spacing = read_nifti(Path(folder) / "phantom.nii.gz")
    mask, _ = read_nifti(Path(folder) / "mask.nii.gz")
    return image, mask > 0.5, spacing


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_ct_phantom_configuration_matches_ibsi(ct_phantom, config):
    image, mask, spacing = ct_phantom
    kwargs, aggregations = CONFIGS[config]
    rows = references(config)
    failures, checked = [], 0
    for aggregation in aggregations:
        features = extract(image, mask, spacing, Settings(aggregation=aggregation, **kwargs))
        for name, value in features.items():
            if name not in IBSI_CODES or (name.startswith("ivh_") and config not in IVH_CONFIGS):
                continue
            ref = _reference_for(name, rows, aggregation)
            if ref is None:
                continue  # IBSI has no value for this configuration (e.g. 2-D texture in config C)
            checked += 1
            tol = tolerance(ref["value"], ref["tolerance"])
            allowed = 3 * tol if (config, name) in KNOWN_DEVIATIONS else tol
            if abs(value - float(ref["value"])) > allowed:
                failures.append(f"{config} {aggregation} {name}: {value:.6g} vs IBSI {ref['value']} "
                                f"± {tol:.3g}")
    assert not failures, "\n".join(failures)
    assert checked >= 140 * len(aggregations)
