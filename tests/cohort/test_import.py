"""`nbrisk cohort import`: a second site's sheet (CSV and XLSX) with a TOML mapping, and bad sheets."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from nbrisk_core.cli import main
from nbrisk_core.cohort import NO_KNOWN_TRUTH, load_cohort
from nbrisk_core.errors import InputError
from tests.cohort.conftest import MAPPING, SITE_PATIENTS


def _import(clinical, mapping, out, *extra):
    return main(["cohort", "import", "--clinical", str(clinical), "--mapping", str(mapping),
                 "--out", str(out), *extra])


def test_csv_import_maps_columns_units_and_codings(site, tmp_path, capsys):
    folder, sheet, table = site
    out = tmp_path / "site-b"
    assert _import(folder / "site.csv", folder / "site.toml", out) == 0
    assert "source columns not mapped: Comment" in capsys.readouterr().out
    cohort = load_cohort(out)
    meta = cohort.meta
    assert meta["format_version"] == 1 and meta["synthetic"] is False and meta["n_patients"] == SITE_PATIENTS
    assert meta["name"] == "Site B 2015-2024" and re.match(r"\d{4}-\d\d-\d\dT", meta["created"])
    assert meta["phase_counts"] == {"nc": 0, "art": 0, "pv": 0}
    clinical = cohort.clinical.set_index("patient_id")
    # age in days -> months (the schema's factor), within the day the sheet rounded to
    assert (clinical["age_months"].to_numpy() - table["age_months"].to_numpy()).__abs__().max() < 0.02
    # LDH in ukat/L -> U/L, back to the generator's values
    both = table["ldh"].notna().to_numpy()
    assert clinical["ldh"].to_numpy()[both] == pytest.approx(table["ldh"].to_numpy()[both], rel=1e-5)
    # codings: MYCN "Amp" = 1 and "1" = 0; "n.e." and "n.a." missing; INSS "2a" -> "2A", stored as INSS
    coded = sheet.set_index("Study number")
    assert set(clinical.loc[coded["MYCN"] == "Amp", "mycn_amplified"]) == {1}
    assert set(clinical.loc[coded["MYCN"] == "1", "mycn_amplified"]) == {0}
    assert clinical.loc[coded["MYCN"] == "n.e.", "mycn_amplified"].isna().all()
    assert clinical.loc[coded["Sex"] == "n.a.", "sex"].isna().all() and clinical["sex"].notna().sum() >= 70
    assert clinical.loc["SB-001", "sex"] in ("M", "F")   # "  male " trimmed before the lookup
    assert set(clinical["inss_stage"].dropna()) <= {"1", "2A", "4", "4S"}
    assert "2A" in set(clinical["inss_stage"])
    assert clinical["inrg_stage"].isna().all()   # never converted from INSS
    assert list(clinical["os_event"]) == [int(e) for e in table["os_event"]]
    # a real cohort has no known truth: asking for it says so instead of failing later
    assert cohort.truth is None and not cohort.has_truth
    with pytest.raises(InputError, match=NO_KNOWN_TRUTH):
        cohort.require_truth("oracle C-index")
    report = json.loads((out / "import-report.json").read_text())
    assert report["unmapped_columns"] == ["Comment"] and report["n_imported"] == SITE_PATIENTS
    ldh = {"variable": "ldh", "column": "LDH", "unit": "ukat/L", "to": "U/L", "factor": 60.0}
    assert ldh in report["conversions"]
    assert report["missing"]["sex"] == 4 and "inrg_stage" in report["variables_not_mapped"]
    assert "Site B" in (out / "import-report.html").read_text()


def test_import_is_deterministic_and_xlsx_gives_the_same_cohort(site, tmp_path):
    pytest.importorskip("openpyxl")
    from openpyxl.xml import DEFUSEDXML

    assert DEFUSEDXML   # the workbook's XML is parsed with defusedxml (entities, DTDs refused)
    folder, _, _ = site
    first, again, workbook = tmp_path / "a", tmp_path / "b", tmp_path / "x"
    assert _import(folder / "site.csv", folder / "site.toml", first) == 0
    assert _import(folder / "site.csv", folder / "site.toml", again) == 0
    assert _import(folder / "site.xlsx", folder / "site.toml", workbook) == 0
    assert (first / "clinical.csv").read_bytes() == (again / "clinical.csv").read_bytes()
    assert (first / "import-report.json").read_bytes() == (again / "import-report.json").read_bytes()
    assert (workbook / "clinical.csv").read_bytes() == (first / "clinical.csv").read_bytes()
    # re-running into an existing cohort replaces it whole
    assert _import(folder / "site.csv", folder / "site.toml", workbook) == 0
    assert (workbook / "clinical.csv").read_bytes() == (first / "clinical.csv").read_bytes()


def _bad_sheet(sheet: pd.DataFrame, case: str) -> tuple[pd.DataFrame, str]:
    bad, mapping = sheet.copy(), MAPPING
    if case == "unknown column in the mapping":
        mapping = MAPPING.replace('column = "INPC"', 'column = "Histology"')
    elif case == "unmapped category":
        bad.loc[3, "Stage"] = "5"
    elif case == "age 40 years":
        bad.loc[3, "Age at diagnosis"] = str(round(40 * 365.25))
    elif case == "negative time":
        bad.loc[3, "OS (days)"] = "-12"
    elif case == "event 2":
        bad.loc[3, "Status"] = "2"
    elif case == "duplicate patient_id":
        bad.loc[3, "Study number"] = bad.loc[2, "Study number"]
    return bad, mapping


@pytest.mark.parametrize("case, message", [
    ("unknown column in the mapping", r"column\(s\) 'Histology' not found in site\.csv"),
    ("unmapped category", r"SB-004\s+Stage\s+5\s+inss_stage: not an accepted category"),
    ("age 40 years", r"SB-004\s+Age at diagnosis\s+14610\s+age_months: outside the accepted range "
                     r"\(expected a number in 0-10957\.5 days\)"),
    ("negative time", r"SB-004\s+OS \(days\)\s+-12\s+negative time"),
    ("event 2", r"SB-004\s+Status\s+2\s+event must be 1 \(death\) or 0 \(censored\)"),
    ("duplicate patient_id", r"SB-003\s+Study number\s+SB-003\s+duplicate patient_id \(2 rows have it\)"),
])
def test_bad_sheets_fail_with_the_named_error_and_write_nothing(site, tmp_path, capsys, case, message):
    folder, sheet, _ = site
    bad, mapping = _bad_sheet(sheet, case)
    work = tmp_path / "work"
    work.mkdir()
    bad.to_csv(work / "site.csv", index=False)
    (work / "map.toml").write_text(mapping)
    assert _import(work / "site.csv", work / "map.toml", tmp_path / "out" / "site-b") == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("nbrisk cohort: error:")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []   # nothing, not half


def test_drop_invalid_writes_the_valid_rows_and_lists_the_dropped(site, tmp_path):
    folder, sheet, _ = site
    bad = sheet.copy()
    bad.loc[5, "Status"] = "2"
    bad.loc[9, "Sex"] = "x"
    bad.to_csv(tmp_path / "site.tsv", index=False, sep="\t")
    out = tmp_path / "site-b"
    assert _import(tmp_path / "site.tsv", folder / "site.toml", out, "--drop-invalid") == 0
    cohort = load_cohort(out)
    assert len(cohort.clinical) == SITE_PATIENTS - 2
    assert {"SB-006", "SB-010"}.isdisjoint(cohort.patient_ids)
    report = json.loads((out / "import-report.json").read_text())
    assert [(d["row"], d["patient_id"]) for d in report["dropped"]] == [(7, "SB-006"), (11, "SB-010")]
    assert report["dropped"][1]["problems"][0]["column"] == "Sex"
    assert "SB-010" in (out / "import-report.html").read_text()


def test_mapping_errors_name_the_section(site, tmp_path):
    from nbrisk_core.cohort.mapping import load_mapping

    path = tmp_path / "m.toml"
    for text, message in (
        (MAPPING.replace("[variables.ldh]", "[variables.lactate]"),
         r"\[variables\.lactate\]: unknown variable"),
        (MAPPING.replace('unit = "ukat/L"', 'unit = "mg"'),
         r"unit 'mg' is not accepted for ldh \(accepted: U/L, ukat/L\)"),
        (MAPPING.replace('unit = "days" }', 'unit = "weeks" }'), r"\[outcome\.time\]: unit 'weeks'"),
        (MAPPING + "\n[extra]\n", r"unknown key\(s\) 'extra'"),
        ("not = [toml", r"not valid TOML"),
    ):
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            load_mapping(path)


def test_blank_rows_are_skipped_and_problems_keep_the_sheet_row_numbers(site, tmp_path, capsys):
    folder, sheet, _ = site
    blank = pd.DataFrame([[""] * sheet.shape[1]], columns=sheet.columns)
    # a blank row after the first patient, two at the end (an Excel sheet's formatted tail)
    padded = pd.concat([sheet.iloc[:1], blank, sheet.iloc[1:], blank, blank], ignore_index=True)
    padded.to_csv(tmp_path / "site.csv", index=False)
    out = tmp_path / "site-b"
    assert _import(tmp_path / "site.csv", folder / "site.toml", out) == 0
    report = json.loads((out / "import-report.json").read_text())
    assert report["blank_rows_skipped"] == 3 and report["n_imported"] == SITE_PATIENTS
    padded.loc[2, "Status"] = "2"   # SB-002, on sheet row 4 (header, SB-001, blank, SB-002)
    padded.to_csv(tmp_path / "site.csv", index=False)
    assert _import(tmp_path / "site.csv", folder / "site.toml", out, "--drop-invalid") == 0
    assert [(d["row"], d["patient_id"]) for d in json.loads((out / "import-report.json").read_text())
            ["dropped"]] == [(4, "SB-002")]


def test_codes_outside_the_map_are_never_coerced(site, tmp_path, capsys):
    folder, sheet, _ = site
    bad = sheet.copy()
    bad.loc[0, "MYCN"] = "1.0"   # not the site's "1" (= not amplified), and not read as 1 either
    bad.to_csv(tmp_path / "site.csv", index=False)
    assert _import(tmp_path / "site.csv", folder / "site.toml", tmp_path / "out") == 2
    err = capsys.readouterr().err
    expected = r"SB-001\s+MYCN\s+1\.0\s+mycn_amplified: not accepted \(expected 0 or 1; add it to the map\)"
    assert re.search(expected, err), err
