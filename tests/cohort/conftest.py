"""A second synthetic site for the cohort tests: the demo generator with another seed, written the way a
research group's spreadsheet looks (its own column names, age in days, LDH in ukat/L, MYCN coded
``Amp``/``1``, INSS stages, free-text codings), and the TOML mapping that imports it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

SITE_SEED = 4242
SITE_PATIENTS = 80

#: INRG stage -> the INSS stage the site records (made up for the test; the schema never converts)
_INSS = {"L1": "1", "L2": "2a", "M": "4", "MS": "4S"}

MAPPING = '''
[cohort]
name = "Site B 2015-2024"
source = "synthetic second site made by the tests"

[patient_id]
column = "Study number"

[outcome]
time = { column = "OS (days)", unit = "days" }
event = { column = "Status", map = { "dead" = 1, "alive" = 0 } }

[variables.age_months]
column = "Age at diagnosis"
unit = "days"

[variables.sex]
column = "Sex"
map = { "male" = "M", "female" = "F", "n.a." = "" }

[variables.inss_stage]
column = "Stage"
map = { "2a" = "2A", "2b" = "2B" }

[variables.histology]
column = "INPC"
map = { "FH" = "favourable", "UH" = "unfavourable" }

[variables.mycn_amplified]
column = "MYCN"
map = { "Amp" = 1, "1" = 0, "n.e." = "" }

[variables.risk_group]
column = "Risk"
map = { "high" = "HR", "non-high" = "NHR" }

[variables.ldh]
column = "LDH"
unit = "ukat/L"

[variables.nse]
column = "NSE"

[variables.ferritin]
column = "Ferritin"
'''


def site_tables(n_patients: int = SITE_PATIENTS, seed: int = SITE_SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the site's sheet as text, the generator's table it was made from)."""
    from nbrisk_core.demo import generate_cohort_tables

    table = generate_cohort_tables(n_patients, seed)
    rng = np.random.default_rng(seed)

    def text(values):
        return ["" if pd.isna(v) else f"{v:g}" for v in values]

    sheet = pd.DataFrame({
        "Study number": [f"SB-{i + 1:03d}" for i in range(n_patients)],
        "Age at diagnosis": [f"{round(m * 365.25 / 12)}" for m in table["age_months"]],
        "Sex": ["male" if s == "M" else "female" for s in table["sex"]],
        "Stage": [_INSS[s] for s in table["inrg_stage"]],
        "INPC": ["FH" if h == "favourable" else "UH" for h in table["histology"]],
        "MYCN": ["Amp" if m == 1 else "1" for m in table["mycn_amplified"]],
        "Risk": ["high" if r == "HR" else "non-high" for r in table["risk_group"]],
        "LDH": text(table["ldh"] / 60.0),
        "NSE": text(table["nse"]),
        "Ferritin": text(table["ferritin"]),
        "OS (days)": [f"{d:g}" for d in table["os_days"]],
        "Status": ["dead" if e else "alive" for e in table["os_event"]],
        "Comment": ["" for _ in range(n_patients)],
    })
    # missing baseline categoricals, as in a real sheet (and white space around a few cells)
    for column, code in (("Sex", "n.a."), ("MYCN", "n.e."), ("INPC", "")):
        rows = rng.choice(n_patients, size=4, replace=False)
        sheet.loc[rows, column] = code
    sheet.loc[0, "Sex"] = f"  {sheet.loc[0, 'Sex']} "
    return sheet, table


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The site's CSV, XLSX and mapping in a session folder: ``(folder, sheet, generator table)``."""
    folder = tmp_path_factory.mktemp("site-b")
    sheet, table = site_tables()
    sheet.to_csv(folder / "site.csv", index=False)
    try:
        import openpyxl  # noqa: F401

        numbers = sheet.copy()   # numbers as numbers in the workbook, as a person types them
        for column in ("Age at diagnosis", "LDH", "OS (days)"):
            numbers[column] = pd.to_numeric(numbers[column], errors="coerce")
        numbers.to_excel(folder / "site.xlsx", index=False, engine="openpyxl")
    except ImportError:
        pass
    (folder / "site.toml").write_text(MAPPING)
    return folder, sheet, table


def write_site_studies(root, n_patients: int, seed: int = 99):
    """A site sheet of ``n_patients`` with one DICOM study folder per patient (demo generator),
    named by the study number as a PACS export would be: ``(sheet path, mapping path, studies folder)``."""
    from nbrisk_core.demo.cohort import cohort_geometry, generate_cohort_tables
    from nbrisk_core.demo.dicom import write_study_files

    n_table = max(12, n_patients)   # 12 for the small sites: the same patients as before
    sheet, _ = site_tables(n_table, seed=seed)
    sheet = sheet.iloc[:n_patients]
    sheet.to_csv(root / "site.csv", index=False)
    (root / "site.toml").write_text(MAPPING)
    table = generate_cohort_tables(n_table, seed)
    for number in range(1, n_patients + 1):
        row = table.iloc[number - 1]
        write_study_files(cohort_geometry(row, seed, number), row.to_dict(), seed, row["patient_id"],
                          root / "raw")
        (root / "raw" / row["patient_id"]).rename(root / "raw" / sheet.loc[number - 1, "Study number"])
    return root / "site.csv", root / "site.toml", root / "raw"

