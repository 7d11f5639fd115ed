"""Audited exports of a stored case, and imputed values kept with the case (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.case import Prognosis
from nbrisk_core.report import case_to_dict, render_pdf
from nbrisk_core.service import export_case, open_case, save_case
from nbrisk_core.store import audit, cases
from nbrisk_core.store.access import system
from nbrisk_core.store.cases import CaseConflictError

BOB, CAROL = system("bob"), system("carol")


def test_each_export_is_audited_when_its_file_is_made(engine, tiny_case):
    saved = cases.save_case(engine, tiny_case, "alice")
    assert audit.list_events(engine, action="case_exported") == []
    made = {fmt: export_case(engine, saved.case_uid, BOB, fmt, version=saved.version)
            for fmt in ("pdf", "csv", "json")}
    assert made["pdf"].startswith(b"%PDF") and saved.case_uid.encode() in made["json"]
    events = {e.detail["format"]: e for e in audit.list_events(engine, action="case_exported")}
    assert set(events) == {"pdf", "csv", "json"}
    for fmt, data in made.items():
        event = events[fmt]
        assert (event.username, event.case_uid) == ("bob", saved.case_uid)
        assert event.detail == {"format": fmt, "version": saved.version, "bytes": len(data),
                                "sha256": hashlib.sha256(data).hexdigest()}
    # exporting is not opening: no case_opened event
    assert audit.list_events(engine, action="case_opened") == []


def test_a_changed_case_is_not_exported_under_its_old_version(engine, tiny_case):
    saved = cases.save_case(engine, tiny_case, "alice")
    saved.notes = "second look"
    cases.save_case(engine, saved, CAROL)
    with pytest.raises(CaseConflictError, match="changed by carol .* now version 2"):
        export_case(engine, saved.case_uid, BOB, "pdf", version=1)
    with pytest.raises(InputError, match="export format = 'docx'"):
        export_case(engine, saved.case_uid, BOB, "docx", version=2)
    assert audit.list_events(engine, action="case_exported") == []


def _prognosis(**overrides) -> Prognosis:
    values = dict(times=np.array([0.0, 365.0, 730.0]), survival=np.array([1.0, 0.9, 0.8]), mlrs=1.1,
                  percentile=70.0, group="high", cutoff=0.9, model="StepCox[backward] + RSF",
                  imputed=("ldh", "mycn_amplified"), imputed_values={"ldh": 456.0, "mycn_amplified": 0},
                  pipeline_sha256="f" * 64)
    values.update(overrides)
    return Prognosis(**values)


def test_a_saved_case_keeps_the_imputed_values_and_the_pipeline(engine, typed_case):
    entered = {"age_months": 30, "nse": {"value": 25, "unit": "ug/L"}}
    case = typed_case(clinical=entered, prognosis=_prognosis(), risk=None, label="P0777")
    uid = save_case(engine, case, "alice").stored.case_uid
    stored = cases.load_case(engine, uid, "alice", record_open=False)
    assert stored.clinical_imputed == {"ldh": 456.0, "mycn_amplified": 0}
    prognosis = stored.prediction("prognosis")
    assert (prognosis.model_name, prognosis.model_sha256) == ("StepCox[backward] + RSF", "f" * 64)
    assert prognosis.result.imputed_values == {"ldh": 456.0, "mycn_amplified": 0}
    clinical = case_to_dict(open_case(engine, uid, "alice"))["clinical"]
    assert clinical["ldh"] == {"value": 456.0, "unit": "U/L", "source": "imputed"}
    assert clinical["nse"] == {"value": 25, "unit": "ug/L", "source": "entered"}


def test_a_case_saved_before_imputed_values_were_kept_opens_and_renders(engine, typed_case):
    old = _prognosis(imputed_values={}, pipeline_sha256=None)
    uid = save_case(engine, typed_case(clinical={"nse": 25.0}, prognosis=old, risk=None, label="P0001"),
                    "alice").stored.case_uid
    stored = open_case(engine, uid, "alice")
    assert stored.prognosis.pipeline_sha256 is None
    assert render_pdf(stored).startswith(b"%PDF")
    ldh = case_to_dict(stored)["clinical"]["ldh"]
    assert ldh["value"] is None and ldh["source"] == "imputed" and "not stored" in ldh["note"]
    assert export_case(engine, uid, "alice", "csv", version=stored.stored.version).startswith(b"field,value")
