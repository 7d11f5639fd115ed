"""Build, load and extend the synthetic demo cohort on disk (layout: ``docs/architecture.md``).

``build_cohort`` samples the patients, renders only each phase's max-area slice for the cohort
tables (the slice where the tumour is largest, by construction and checked against its
neighbours), writes the tables, the compressed HU slices, the 8-bit W400/L40 exports and the
full DICOM studies of a few example patients, and reports the oracle figures. Everything is a
function of the seed: the same seed gives the same bytes.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from nbrisk_core.clinical.schema import CLINICAL_VARIABLES, LAB_VARIABLES, OUTCOME_COLUMNS
from nbrisk_core.cohort.format import SLICES_COLUMNS, Cohort, check_target, cohort_meta, staged_dir
from nbrisk_core.cohort.format import load_cohort as load_any_cohort
from nbrisk_core.demo.dicom import ZIP_DATE_TIME, slice_positions, write_study_files
from nbrisk_core.demo.oracle import auc, harrell_c_index
from nbrisk_core.demo.patients import GENERATOR_VERSION, HR_FRACTION, sample_patients
from nbrisk_core.demo.render import (N_SLICES, PHASES, SLICE_SIZE, CaseGeometry, case_geometry,
                                     render_slice, slice_truth, tumour_mask)
from nbrisk_core.errors import InputError

COHORT_NAME = "nbrisk-synthetic-demo"
DEFAULT_SEED = 20250416
DEFAULT_PATIENTS = 202
DEFAULT_STUDIES = 5
WINDOW = {"width": 400, "level": 40}

#: Random stream of the cohort (on-the-fly training uses ``training.TRAINING_STREAM``), so the
#: two never share patients.
COHORT_STREAM = 0

#: Dense image truth, measured on the arterial max-area slice (the paper's best phase):
#: ``tumour_area_mm2`` (mask area), ``longest_diameter_mm`` (largest distance between mask pixel
#: centres), ``calcification_count`` (calcified foci visible on that slice; each > 130 HU),
#: ``calcification_volume_mm3`` (their volume inside the slice's slab), ``necrotic_fraction``
#: (necrotic share of the mask), ``enhancement_hu`` (true arterial enhancement of the viable tumour
#: over its NC attenuation), ``encasement`` (the tumour outline covers at least half of the aortic
#: circumference), ``crosses_midline`` (the mask reaches more than 3 mm past the midline on both sides).
DENSE_TRUTH_COLUMNS: tuple[str, ...] = (
    "tumour_area_mm2", "longest_diameter_mm", "calcification_count", "calcification_volume_mm3",
    "necrotic_fraction", "enhancement_hu", "encasement", "crosses_midline",
)
TRUTH_COLUMNS: tuple[str, ...] = (
    "patient_id", "latent_score", "true_linear_predictor", "p_high_risk",
    "max_area_slice_nc", "max_area_slice_art", "max_area_slice_pv", *DENSE_TRUTH_COLUMNS,
    "pixel_spacing_mm", "slice_thickness_mm",
)
CLINICAL_COLUMNS: tuple[str, ...] = ("patient_id", *(v.name for v in CLINICAL_VARIABLES), *OUTCOME_COLUMNS)


def patient_id_for(number: int) -> str:
    """``P0007`` for patient number 7 (1-based)."""
    return f"P{number:04d}"


def hr_count_for(n_patients: int) -> int:
    """Number of HR patients: 121 of 202 as in the paper, the same proportion for other sizes."""
    return int(round(n_patients * HR_FRACTION))


def generate_cohort_tables(n_patients: int = DEFAULT_PATIENTS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """The cohort's patient table without any image (fast; used by tests and to regenerate studies).

    One row per patient, indexed 0..n-1, with ``patient_id``, the clinical and outcome columns, the
    truth (latent score, true linear predictor, p_high_risk) and the ``img_*`` tumour parameters.
    """
    _check_size(n_patients, seed)
    table = sample_patients(n_patients, np.random.default_rng([seed, COHORT_STREAM]),
                            exact_hr_count=hr_count_for(n_patients))
    table.insert(0, "patient_id", [patient_id_for(i + 1) for i in range(n_patients)])
    return table


def _check_size(n_patients, seed) -> None:
    if not isinstance(n_patients, (int, np.integer)) or n_patients < 2:
        raise InputError(f"n_patients = {n_patients!r}: expected an integer >= 2 (both risk groups)")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed = {seed!r}: expected a non-negative integer")


def cohort_geometry(table_row, seed: int, number: int) -> CaseGeometry:
    """The image geometry of cohort patient ``number`` (1-based)."""
    return case_geometry(table_row, (int(seed), COHORT_STREAM, int(number)))


def example_patients(table: pd.DataFrame, n_studies: int) -> list[str]:
    """Patients with pre-built DICOM studies: alternately HR and NHR, in ID order."""
    hr = list(table.loc[table["risk_group"] == "HR", "patient_id"])
    nhr = list(table.loc[table["risk_group"] == "NHR", "patient_id"])
    chosen: list[str] = []
    while len(chosen) < n_studies and (hr or nhr):
        for group in (hr, nhr):
            if group and len(chosen) < n_studies:
                chosen.append(group.pop(0))
    return sorted(chosen)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed zip timestamps, so the bytes depend only on the arrays."""
    # level 1: CT noise barely compresses further, and level 6 costs 3x the time
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=1)


def _save_png(path: Path, grey: np.ndarray) -> None:
    Image.fromarray(grey, mode="L").save(path, format="PNG")


def render_case_slices(geom: CaseGeometry) -> tuple[dict, dict, dict]:
    """Render the max-area slice of each phase: (hu by phase, mask by phase, dense truth of ART)."""
    hu_by_phase, mask_by_phase, truth = {}, {}, {}
    for phase in PHASES:
        k = geom.max_area_slice(phase)
        hu, mask, detail = render_slice(geom, phase, k, with_detail=True)
        hu_by_phase[phase] = hu
        mask_by_phase[phase] = mask
        if phase == "art":
            truth = slice_truth(geom, phase, k, mask.astype(bool), detail)
    return hu_by_phase, mask_by_phase, truth


def _check_max_area(geom: CaseGeometry, phase: str, patient_id: str) -> None:
    # The profile makes the centre slice the strict maximum; verify against both neighbours.
    k = geom.max_area_slice(phase)
    area = [int(tumour_mask(geom, phase, j).sum()) for j in (k - 1, k, k + 1)]
    if not (area[1] > area[0] and area[1] > area[2]):
        raise RuntimeError(f"{patient_id} {phase}: slice {k} is not the strict max-area slice {area}")


def build_cohort(out, n_patients: int = DEFAULT_PATIENTS, seed: int = DEFAULT_SEED,
                 n_studies: int = DEFAULT_STUDIES, progress=None) -> dict:
    """Generate the synthetic cohort into ``out`` (replaced atomically if it is a demo cohort).

    Parameters
    ----------
    out : path-like
        Target directory; created if missing. An existing directory is replaced only if it is
        empty or holds a demo cohort (``cohort.json``); anything else raises :class:`InputError`.
    n_patients, seed, n_studies : int
        Cohort size, random seed, and number of example patients with full DICOM studies.
    progress : callable, optional
        Called as ``progress(done, total)`` while rendering.

    Returns
    -------
    dict
        Summary: n, HR/NHR counts, median age, median follow-up, missingness per lab, oracle AUC,
        oracle C-index, wall time (s), size on disk (bytes), per-study time (s).
    """
    started = time.perf_counter()
    _check_size(n_patients, seed)
    if not isinstance(n_studies, (int, np.integer)) or not 0 <= n_studies <= n_patients:
        raise InputError(f"n_studies = {n_studies!r}: expected an integer in 0..{n_patients}")
    out = Path(out)
    check_target(out, "demo cohort")
    with staged_dir(out, "building") as staging:
        summary = _build_into(staging, n_patients, seed, n_studies, progress)
    summary["path"] = str(out)
    summary["wall_time_s"] = time.perf_counter() - started
    summary["size_bytes"] = directory_size(out)
    return summary


def directory_size(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _build_into(out: Path, n_patients: int, seed: int, n_studies: int, progress) -> dict:
    from nbrisk_core.imaging.windowing import window_to_uint8

    table = generate_cohort_tables(n_patients, seed)
    truth_rows, slice_rows = [], []
    for i, row in enumerate(table.itertuples(index=False)):
        params = row._asdict()
        pid = params["patient_id"]
        geom = cohort_geometry(params, seed, i + 1)
        for phase in PHASES:
            _check_max_area(geom, phase, pid)
        hu, mask, dense = render_case_slices(geom)
        folder = out / "slices" / pid
        folder.mkdir(parents=True)
        _save_npz(folder / "hu.npz", {**{p: hu[p] for p in PHASES}, **{f"mask_{p}": mask[p] for p in PHASES}})
        for phase in PHASES:
            _save_png(folder / f"{phase}.png",
                      window_to_uint8(hu[phase], WINDOW["width"], WINDOW["level"]))
        positions = slice_positions(geom)
        for phase in PHASES:
            k = geom.max_area_slice(phase)
            area = float(mask[phase].astype(bool).sum()) * geom.pixel_spacing ** 2
            slice_rows.append({"patient_id": pid, "phase": phase, "series_uid": "", "slice_index": k,
                               "z_mm": round(float(positions[k]), 3), "area_mm2": round(area, 2),
                               "chosen_by": "auto", "confirmed_by": "", "confirmed_at": ""})
        truth_rows.append({
            "patient_id": pid,
            **{f"max_area_slice_{p}": geom.max_area_slice(p) for p in PHASES},
            **dense,
            "pixel_spacing_mm": geom.pixel_spacing,
            "slice_thickness_mm": geom.slice_thickness,
        })
        if progress is not None:
            progress(i + 1, n_patients)

    truth = table[["patient_id", "latent_score", "true_linear_predictor", "p_high_risk"]].merge(
        pd.DataFrame(truth_rows), on="patient_id")
    truth = _round_truth(truth[list(TRUTH_COLUMNS)])
    clinical = table[list(CLINICAL_COLUMNS)]
    clinical.to_csv(out / "clinical.csv", index=False, lineterminator="\n")
    truth.to_csv(out / "truth.csv", index=False, lineterminator="\n")
    pd.DataFrame(slice_rows, columns=list(SLICES_COLUMNS)).to_csv(out / "slices.csv", index=False,
                                                                   lineterminator="\n")

    examples = example_patients(table, n_studies)
    study_times = []
    for pid in examples:
        t0 = time.perf_counter()
        number = int(pid[1:])
        row = table.iloc[number - 1]
        write_study_files(cohort_geometry(row, seed, number), row.to_dict(), seed, pid, out / "studies")
        study_times.append(time.perf_counter() - t0)

    stats = cohort_statistics(table)
    spacings = truth["pixel_spacing_mm"]
    # cohort format v1 (docs/cohort-format.md); created is null: the cohort is a function of the seed
    meta = cohort_meta(name=COHORT_NAME, synthetic=True, source=f"nbrisk demo build (generator "
                       f"{GENERATOR_VERSION}, seed {int(seed)})", created=None, n_patients=n_patients,
                       phase_counts={p: n_patients for p in PHASES})
    meta.update({
        "description": "Synthetic known-truth multiphase-CT neuroblastoma cohort generated by NBRisk; "
                       "no real patient data.",
        "seed": int(seed),
        "n_patients": int(n_patients),
        "generator_version": GENERATOR_VERSION,
        "oracle_auc": stats["oracle_auc"],
        "oracle_c_index": stats["oracle_c_index"],
        "example_patients": examples,
        "slice_shape": [SLICE_SIZE, SLICE_SIZE],
        "n_slices": N_SLICES,
        # pixel spacing and slice thickness vary with the child's size: the per-patient values
        # are in truth.csv (pixel_spacing_mm, slice_thickness_mm); these are the cohort medians
        "pixel_spacing_mm": [float(np.median(spacings))] * 2,
        "pixel_spacing_mm_range": [float(spacings.min()), float(spacings.max())],
        "slice_thickness_mm": float(np.median(truth["slice_thickness_mm"])),
        "slice_thickness_mm_values": sorted(float(v) for v in truth["slice_thickness_mm"].unique()),
        "window": dict(WINDOW),
        "dense_truth_phase": "art",
        "statistics": {k: v for k, v in stats.items() if k not in ("oracle_auc", "oracle_c_index")},
    })
    (out / "cohort.json").write_text(json.dumps(meta, indent=2) + "\n")
    return {**stats, "n_studies": len(examples), "example_patients": examples,
            "study_time_s": float(np.mean(study_times)) if study_times else None}


def _round_truth(truth: pd.DataFrame) -> pd.DataFrame:
    truth = truth.copy()
    for column, digits in (("latent_score", 6), ("true_linear_predictor", 6), ("p_high_risk", 6),
                           ("tumour_area_mm2", 2), ("longest_diameter_mm", 2),
                           ("calcification_volume_mm3", 2),
                           ("necrotic_fraction", 4), ("enhancement_hu", 2), ("pixel_spacing_mm", 4)):
        truth[column] = truth[column].astype(float).round(digits)
    return truth


def cohort_statistics(table: pd.DataFrame) -> dict:
    """Summary figures of a cohort table (clinical + truth columns)."""
    hr = (table["risk_group"] == "HR").to_numpy()
    age = table["age_months"]
    follow_up = table["os_days"]
    return {
        "n_patients": int(len(table)),
        "n_hr": int(hr.sum()),
        "n_nhr": int((~hr).sum()),
        "median_age_months": float(age.median()),
        "age_iqr_months": [float(age.quantile(0.25)), float(age.quantile(0.75))],
        "median_follow_up_days": float(follow_up.median()),
        "follow_up_iqr_days": [float(follow_up.quantile(0.25)), float(follow_up.quantile(0.75))],
        "deaths": int(table["os_event"].sum()),
        "missing_fraction": {v.name: float(table[v.name].isna().mean()) for v in LAB_VARIABLES},
        "oracle_auc": auc(hr, table["p_high_risk"].to_numpy()),
        "oracle_c_index": harrell_c_index(follow_up.to_numpy(), table["os_event"].to_numpy(),
                                          table["true_linear_predictor"].to_numpy()),
    }


# ---------------------------------------------------------------------------------------------
# reading a cohort back


class DemoCohort(Cohort):
    """A demo cohort on disk: a :class:`~nbrisk_core.cohort.format.Cohort` whose truth is always known
    (``truth`` is ``truth.csv``, never None)."""


def load_cohort(path) -> DemoCohort:
    """Read a demo cohort directory written by :func:`build_cohort`: the format's loader
    (:func:`nbrisk_core.cohort.format.load_cohort`) plus the generator's keys and tables.

    Raises
    ------
    InputError
        If the directory, ``cohort.json`` or a table is missing or invalid (the message names the path).
    """
    cohort = load_any_cohort(path)
    meta_path = cohort.path / "cohort.json"
    required = ("seed", "generator_version")
    if any(k not in cohort.meta for k in required):
        raise InputError(f"{meta_path}: expected the keys {', '.join(required)} of a demo cohort "
                         f"(build it with 'nbrisk demo build --out {cohort.path}')", source=str(meta_path))
    truth_path = cohort.path / "truth.csv"
    if cohort.truth is None:
        raise InputError(f"{truth_path}: missing table of the demo cohort", source=str(truth_path))
    for table_path, table, columns in ((cohort.path / "clinical.csv", cohort.clinical, CLINICAL_COLUMNS),
                                       (truth_path, cohort.truth, TRUTH_COLUMNS)):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise InputError(f"{table_path}: missing columns {', '.join(missing)}", source=str(table_path))
    return DemoCohort(path=cohort.path, meta=cohort.meta, clinical=cohort.clinical, truth=cohort.truth,
                      slices=cohort.slices)


def write_study(cohort_dir, patient_id: str, out_dir, as_zip: bool = False) -> list[Path]:
    """Write the full 3-phase DICOM study of one cohort patient, regenerated from the seed.

    The study is written to ``out_dir/<patient_id>/{NC,ART,PV}/IM0001.dcm ...`` (and
    ``out_dir/<patient_id>.zip`` if ``as_zip``). Its max-area slices are bit-identical to the
    cohort's ``hu.npz``.

    Raises
    ------
    InputError
        Unknown patient, missing cohort, or a cohort built by another generator version.
    """
    cohort_dir = Path(cohort_dir)
    meta_path = cohort_dir / "cohort.json"
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: missing; {cohort_dir} is not a demo cohort "
                         f"(build it with 'nbrisk demo build --out {cohort_dir}')")
    try:
        meta = json.loads(meta_path.read_text())
        seed, n_patients = int(meta["seed"]), int(meta["n_patients"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{meta_path}: invalid demo cohort metadata ({error})") from None
    if meta.get("generator_version") != GENERATOR_VERSION:
        raise InputError(f"{meta_path}: generator_version {meta.get('generator_version')!r} differs "
                         f"from this NBRisk's {GENERATOR_VERSION!r}; rebuild the cohort with "
                         "'nbrisk demo build'")
    number = _patient_number(patient_id, n_patients, cohort_dir)
    table = generate_cohort_tables(n_patients, seed)
    row = table.iloc[number - 1]
    return write_study_files(cohort_geometry(row, seed, number), row.to_dict(), seed, patient_id,
                             Path(out_dir), as_zip=as_zip)


def _patient_number(patient_id: str, n_patients: int, cohort_dir: Path) -> int:
    text = str(patient_id)
    valid = len(text) >= 5 and text[0] == "P" and text[1:].isdigit()
    number = int(text[1:]) if valid else 0
    if not valid or not 1 <= number <= n_patients or patient_id_for(number) != text:
        raise InputError(f"patient ID {patient_id!r} is not in the demo cohort at {cohort_dir}: "
                         f"expected P0001..{patient_id_for(n_patients)}")
    return number
