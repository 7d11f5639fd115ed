"""Replays issue 18 finding 10 (silent coercion of labs) against the core parser, the CLI and the page.

Each attack used to be read as something else: JSON ``true`` as 1.0, a duplicate or whitespace/case
variant key as "the last one wins", ``12,5`` as 125 (the browser's number field), ``1e400`` as
"missing, imputed". Each must now be refused with a message naming the field, the value and what
was expected; the CLI exits 2 with one line; the page shows the message and runs no model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from nbrisk_core.errors import InputError
from nbrisk_core.prognosis.validation import load_json_object, parse_entry, validate_clinical
from nbrisk_ui import prognosis as ui_prognosis
from nbrisk_ui import state
from nbrisk_ui.text import plain

PAGES = Path(__file__).resolve().parents[2] / "pages"

#: JSON lab files of the attack -> what the refusal must say (all lower-case)
JSON_ATTACKS = {
    "bool_numeric": ('{"nse": true}', ["nse", "true", "not a number"]),
    "bool_binary": ('{"mycn_amplified": true}', ["mycn_amplified", "true", "expected 0 or 1"]),
    "bool_in_unit_object": ('{"nse": {"value": false, "unit": "ug/L"}}', ["nse", "false", "not a number"]),
    "duplicate_key": ('{"nse": 12, "nse": 900}', ["'nse' is given 2 times", "each variable once"]),
    "whitespace_variant": ('{"nse": 12, " nse ": 900}', ["'nse' is given 2 times", "' nse '"]),
    "case_variant": ('{"ldh": 300, "LDH": 9000}', ["'ldh' is given 2 times", "'ldh'"]),
    "overflow": ('{"ferritin": 1e400}', ["ferritin = 1e400", "not a finite number", "ng/ml"]),
    "nan_literal": ('{"crp": NaN}', ["crp = nan", "not a finite number", "mg/l"]),
    "infinity_literal": ('{"crp": -Infinity}', ["crp = -infinity", "not a finite number"]),
    "decimal_comma": ('{"nse": "12,5"}', ["nse = '12,5'", "ambiguous", "point"]),
    "thousands_separator": ('{"ldh": "1,250"}', ["ldh = '1,250'", "ambiguous", "thousands separator"]),
    "unknown_key": ('{"nse": 12, "colour": "blue"}', ["unknown variable", "colour", "expected names"]),
    "inf_text": ('{"afp": "inf"}', ["afp = 'inf'", "not a finite number"]),
}


def _refusal(text: str, tmp_path: Path) -> str:
    path = tmp_path / "labs.json"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        validate_clinical(path, require=False)
    return str(info.value)


@pytest.mark.parametrize("attack", sorted(JSON_ATTACKS))
def test_lab_file_attacks_are_refused_with_field_value_and_expectation(attack, tmp_path):
    text, expected = JSON_ATTACKS[attack]
    message = _refusal(text, tmp_path)
    assert message.startswith("labs.json: "), message
    for part in expected:
        assert part in message.lower(), (part, message)


def test_well_formed_labs_still_parse(tmp_path):
    path = tmp_path / "labs.json"
    path.write_text('{"nse": 12.5, "ldh": {"value": 1250, "unit": "U/L"}, "mycn_amplified": 1, "crp": null}')
    table = validate_clinical(path, require=False)
    assert table.loc[0, "nse"] == 12.5 and table.loc[0, "ldh"] == 1250.0
    assert table.loc[0, "mycn_amplified"] == 1.0 and pd.isna(table.loc[0, "crp"])


def test_duplicate_json_keys_are_caught_at_any_depth():
    with pytest.raises(InputError, match="'value' is given 2 times"):
        load_json_object('{"nse": {"value": 3, "value": 4000}}', "labs.json")


@pytest.mark.parametrize("header", ["nse,nse", "nse,NSE", "nse,nse [ug/L]"])
def test_duplicate_csv_columns_are_refused(header, tmp_path):
    path = tmp_path / "labs.csv"
    path.write_text(f"{header}\n12,900\n")
    with pytest.raises(InputError) as info:
        validate_clinical(path, require=False)
    assert "labs.csv: header: 'nse' is given 2 times" in str(info.value)


@pytest.mark.parametrize("typed, expected", [
    ("12,5", "ambiguous"), ("1,250", "ambiguous"), ("1.250,5", "ambiguous"), ("1e400", "not a finite number"),
    ("nan", "not a finite number"), ("1_000", "not a number"), ("12 ng", "not a number"),
])
def test_form_text_is_parsed_strictly(typed, expected):
    with pytest.raises(InputError) as info:
        parse_entry({"nse": {"value": typed, "unit": "ng/mL"}})
    message = str(info.value)
    assert f"nse = {typed!r}" in message and expected in message and "ng/mL" in message


def test_form_text_that_is_a_number_parses():
    assert parse_entry({"nse": {"value": " 12.5 ", "unit": "ug/L"}, "ldh": {"value": "", "unit": "U/L"},
                        "mycn_amplified": 1, "sex": "F"}) == {
        "nse": {"value": 12.5, "unit": "ug/L"}, "mycn_amplified": 1, "sex": "F"}


# ------------------------------------------------------------------ CLI: exit 2, one line
@pytest.mark.parametrize("attack", ["bool_numeric", "whitespace_variant", "overflow", "decimal_comma"])
def test_cli_refuses_bad_labs_with_exit_2_and_one_line(attack, tmp_path, capsys):
    from nbrisk_core.cli import main

    path = tmp_path / "labs.json"
    path.write_text(JSON_ATTACKS[attack][0])
    # the labs are checked before the images are read: no image or model is needed to be refused
    status = main(["predict", "--art", str(tmp_path / "no_such_image.png"), "--labs", str(path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("nbrisk predict: error: labs.json: "), err
    assert JSON_ATTACKS[attack][1][0] in err.lower()


# ------------------------------------------------------------------ page: message, no model run
@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    from nbrisk_core.demo.cohort import CLINICAL_COLUMNS, TRUTH_COLUMNS, generate_cohort_tables
    from nbrisk_core.prognosis.pipeline import stand_in_embeddings

    path = tmp_path_factory.mktemp("labs_page") / "cohort"
    path.mkdir()
    table = generate_cohort_tables(60)
    table[list(CLINICAL_COLUMNS)].to_csv(path / "clinical.csv", index=False)
    table.reindex(columns=list(TRUTH_COLUMNS)).to_csv(path / "truth.csv", index=False)
    (path / "cohort.json").write_text(json.dumps({"name": "labs-test", "synthetic": True, "seed": 0,
                                                  "n_patients": 60, "generator_version": "test",
                                                  "example_patients": ["P0003"]}))
    embeddings = stand_in_embeddings(pd.read_csv(path / "truth.csv", dtype={"patient_id": str}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ui_prognosis, "load_embeddings", lambda cohort_dir: embeddings)
        pipeline = ui_prognosis.fit_pipeline(str(path), "app", "LASSO")
    return path, embeddings, pipeline


@pytest.fixture
def prognosis_page(tiny_pipeline, monkeypatch):
    from nbrisk_ui.common import load_cohort_tables

    path, embeddings, pipeline = tiny_pipeline
    calls = []
    real = type(pipeline).predict_patient

    def counting(self, embedding, values):
        calls.append(values)
        return real(self, embedding, values)

    monkeypatch.setenv("NBRISK_DATA_DIR", str(path))
    monkeypatch.setattr(ui_prognosis, "load_embeddings", lambda cohort_dir: embeddings)
    monkeypatch.setattr(ui_prognosis, "fit_pipeline", lambda cohort_dir, grid, selected=None: pipeline)
    monkeypatch.setattr(type(pipeline), "predict_patient", counting)
    for cached in (ui_prognosis.get_pipeline, ui_prognosis.cohort_embedding_table, load_cohort_tables):
        cached.clear()
    at = AppTest.from_file(str(PAGES / "3_Prognosis.py"), default_timeout=120).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    yield at, calls
    for cached in (ui_prognosis.get_pipeline, ui_prognosis.cohort_embedding_table, load_cohort_tables):
        cached.clear()


def _field(at, name: str):
    return at.text_input(key=state.PROGNOSIS_FORM + name)


@pytest.mark.parametrize("typed, expected", [("12,5", "ambiguous"), ("1e400", "not a finite number")])
def test_page_shows_the_refusal_and_runs_no_model(prognosis_page, typed, expected):
    at, calls = prognosis_page
    _field(at, "nse").set_value(typed)
    next(b for b in at.button if b.label == "Predict survival").click().run()
    assert not at.exception
    messages = [plain(e.value) for e in at.error]
    assert any(f"nse = {typed!r}" in m and expected in m for m in messages), messages
    assert calls == [] and state.PROGNOSIS_RESULT not in at.session_state
    # the same field with a point is accepted and used as typed, not imputed
    _field(at, "nse").set_value("12.5")
    next(b for b in at.button if b.label == "Predict survival").click().run()
    assert not at.exception and len(calls) == 1
    assert at.session_state[state.CLINICAL_VALUES]["nse"] == {"value": 12.5, "unit": "ng/mL"}
    assert "nse" not in at.session_state[state.PROGNOSIS_RESULT].imputed


def test_page_error_quoting_typed_text_shows_it_as_text(prognosis_page):
    """The refusal quotes what was typed; typed Markdown is shown as text, not as an image (finding 5)."""
    at, calls = prognosis_page
    typed = "![t](http://host/x.png)"
    _field(at, "ldh").set_value(typed)
    next(b for b in at.button if b.label == "Predict survival").click().run()
    message = next(e.value for e in at.error if "ldh" in plain(e.value))
    assert f"ldh = {typed!r} is not a number" in plain(message)
    bare = re.sub(r"\\.", "", message)  # what Markdown can still act on
    assert "![" not in bare and "](" not in bare and "http://" not in bare
    assert "http://" not in re.sub(r"\\(.)", r"\1", message)  # no GFM autolink literal either
    assert calls == []


def test_cohort_clinical_csv_with_a_duplicate_column_is_refused(tmp_path):
    from nbrisk_core.prognosis.pipeline import read_cohort

    (tmp_path / "clinical.csv").write_text("patient_id,nse,os_days,os_event,NSE\nP1,12,100,1,900\n")
    with pytest.raises(InputError, match=r"clinical.csv: header: 'nse' is given 2 times \(as 'nse', 'NSE'\)"):
        read_cohort(tmp_path)
