"""``nbrisk inrg --csv FILE --out FILE``."""

from __future__ import annotations

import pandas as pd

from nbrisk_core.cli import main

HEADER = ("patient_id,inrg_stage,age_months,histologic_category,differentiation_grade,mycn_amplified,"
          "aberration_11q,ploidy,histology,segmental_aberrations,resection,symptomatic\n")


def write(tmp_path, rows):
    path = tmp_path / "patients.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_adds_the_risk_columns(tmp_path, capsys):
    source = write(tmp_path, [
        "p1,L2,10,neuroblastoma,,0,0,,,,,",            # INRG D low; COG intermediate -> disagree
        "p2,M,30,,,,,,,,,",                             # P high / high, nothing else needed
        "p3,M,10,neuroblastoma,,0,,,favourable,,,",     # INRG needs ploidy
        "p4,L1,40,GN maturing,,,,,favourable,,,",       # INRG A; COG needs MYCN (and resection if amplified)
    ])
    out = tmp_path / "out.csv"
    assert main(["inrg", "--csv", str(source), "--out", str(out)]) == 0
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(table.columns[-5:]) == ["inrg_group", "inrg_risk", "cog_risk", "missing_inputs", "risk_note"]
    assert table["patient_id"].tolist() == ["p1", "p2", "p3", "p4"]
    assert table["inrg_group"].tolist() == ["D", "P", "", "A"]
    assert table["inrg_risk"].tolist() == ["low", "high", "indeterminate", "very low"]
    assert table["cog_risk"].tolist() == ["intermediate", "high", "intermediate", "indeterminate"]
    assert table["missing_inputs"].tolist() == ["", "", "ploidy", "mycn_amplified; resection"]
    assert table["risk_note"][0] == "INRG and COG disagree: INRG low (D), COG intermediate"
    assert table["risk_note"][2] == "INRG indeterminate: needs ploidy"
    assert "disagree on 1" in capsys.readouterr().out


def test_invalid_cells_exit_2_one_line_each_and_nothing_written(tmp_path, capsys):
    source = write(tmp_path, ["p1,L3,10,,,0,,,,,,", "p2,M,abc,,,yes,,,,,,"])
    out = tmp_path / "out.csv"
    assert main(["inrg", "--csv", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert not out.exists()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert "row 1: inrg_stage = 'L3' is not accepted; expected L1 | L2 | M | MS" in lines[0]
    assert "row 2: age_months = 'abc'" in lines[1]
    assert "row 2: mycn_amplified = 'yes' is not accepted; expected 0 | 1" in lines[2]
    assert lines[-1].startswith("nbrisk inrg: error:") and "3 invalid cell(s)" in lines[-1]


def test_missing_file_and_no_known_columns_exit_2(tmp_path, capsys):
    assert main(["inrg", "--csv", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "file not found" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    assert main(["inrg", "--csv", str(other), "--out", str(tmp_path / "o.csv")]) == 2
    assert "no column named like an input" in capsys.readouterr().err
