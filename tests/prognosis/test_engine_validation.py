"""Validation of entered / uploaded clinical values (nbrisk_core.prognosis.validation)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.prognosis.validation import encode_clinical, encoded_columns, validate_clinical

COMPLETE = {"age_months": 38.5, "sex": "M", "inrg_stage": "M", "histology": "unfavourable", "mycn_amplified": 1,
            "nse": 120.0, "risk_group": "HR"}


def test_complete_entry_in_canonical_units():
    table = validate_clinical(COMPLETE)
    assert table.loc[0, "age_months"] == 38.5 and table.loc[0, "sex"] == "M"
    assert table.loc[0, "mycn_amplified"] == 1.0
    assert np.isnan(table.loc[0, "ferritin"])  # labs may be missing


@pytest.mark.parametrize("entry, variable, canonical", [
    ({"hemoglobin": {"value": 11.2, "unit": "g/dL"}}, "hemoglobin", 112.0),
    ({"crp": {"value": 2.5, "unit": "mg/dL"}}, "crp", 25.0),
    ({"age_months": {"value": 3, "unit": "years"}}, "age_months", 36.0),
    ({"wbc [/uL]": 8000}, "wbc", 8.0),
    ({"ldh": {"value": 5, "unit": "ukat/L"}}, "ldh", 300.0),
])
def test_unit_conversion(entry, variable, canonical):
    assert validate_clinical(entry, require=False).loc[0, variable] == pytest.approx(canonical)


def test_out_of_range_message_names_variable_value_and_range():
    with pytest.raises(InputError) as info:
        validate_clinical({**COMPLETE, "nse": -3})
    message = str(info.value)
    assert "nse = -3 ng/mL" in message and "0-5000 ng/mL" in message


def test_out_of_range_in_alternative_unit_shows_both_ranges():
    with pytest.raises(InputError, match=r"crp = 70 mg/dL is outside the accepted range 0-50 mg/dL \(0-500 mg/L\)"):
        validate_clinical({"crp": {"value": 70, "unit": "mg/dL"}}, require=False)


def test_unknown_unit_category_variable_and_missing_required_are_all_reported():
    entry = {**COMPLETE, "sex": "m", "ferritin": {"value": 3, "unit": "mmol/L"}, "colour": "blue"}
    del entry["inrg_stage"]
    with pytest.raises(InputError) as info:
        validate_clinical(entry, source="labs.json")
    message = str(info.value)
    assert message.startswith("labs.json: ")
    assert "sex = 'm' is not an accepted category (expected one of F, M)" in message
    assert "unit 'mmol/L' is not accepted (expected one of ng/mL, ug/L)" in message
    assert "unknown variable(s) colour" in message
    assert "inrg_stage is required" in message


def test_binary_and_numbers_are_not_coerced():
    with pytest.raises(InputError, match="mycn_amplified = 'yes' is not accepted"):
        validate_clinical({**COMPLETE, "mycn_amplified": "yes"})
    with pytest.raises(InputError, match="nse = 'high' is not a number"):
        validate_clinical({"nse": "high"}, require=False)


def test_files_json_and_csv(tmp_path):
    (tmp_path / "labs.json").write_text(json.dumps({"nse": {"value": 50, "unit": "ug/L"}, "ferritin": 80}))
    table = validate_clinical(tmp_path / "labs.json", require=False)
    assert table.loc[0, "nse"] == 50 and table.loc[0, "ferritin"] == 80
    pd.DataFrame([{"nse [ug/L]": "40", "crp": ""}]).to_csv(tmp_path / "labs.csv", index=False)
    table = validate_clinical(tmp_path / "labs.csv", require=False)
    assert table.loc[0, "nse"] == 40 and np.isnan(table.loc[0, "crp"])
    pd.DataFrame([{"nse": "9999"}]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match=r"^bad.csv: nse = 9999 ng/mL is outside"):
        validate_clinical(tmp_path / "bad.csv", require=False)
    with pytest.raises(InputError, match="file not found"):
        validate_clinical(tmp_path / "absent.json")


def test_table_rows_are_named_in_messages():
    frame = pd.DataFrame([COMPLETE, {**COMPLETE, "age_months": 400}])
    with pytest.raises(InputError,
                       match=r"row 2: age_months = 400 months is outside the accepted range 0-360"):
        validate_clinical(frame)


def test_encoding_columns_and_log_transform():
    table = validate_clinical(COMPLETE)
    encoded = encode_clinical(table)
    assert list(encoded.columns) == encoded_columns()
    assert encoded.loc[0, "inrg_stage_M"] == 1.0 and encoded.loc[0, "inrg_stage_L2"] == 0.0
    assert encoded.loc[0, "risk_group_HR"] == 1.0 and encoded.loc[0, "sex_M"] == 1.0
    assert encoded.loc[0, "nse"] == pytest.approx(np.log1p(120.0))
    assert np.isnan(encoded.loc[0, "ferritin"])
