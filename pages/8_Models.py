"""Models: clinical, image and combined models side by side (``nbrisk compare``'s output, issue 26)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from nbrisk_core import config
from nbrisk_core.compare import report as compare_report
from nbrisk_core.compare.protocol import read_outputs
from nbrisk_core.compare.report import summary_table
from nbrisk_core.errors import InputError
from nbrisk_ui import auth
from nbrisk_ui.common import cohort_dir, load_cohort_tables, synthetic_banner
from nbrisk_ui.text import md, show_error

KEY = "models."   # prefix of this page's widget keys
SET_LABELS = {"test": "Test split (20 %)", "cv": "Development cohort, cross-validated",
              "external": "External cohort (frozen models)"}


@st.cache_data(show_spinner="Reading the comparison…", max_entries=8)
def comparison(path: str, stamp: float):
    """The report and predictions of a compare output folder (``stamp``: report.json's mtime, so that a
    new run is read again)."""
    return read_outputs(Path(path))


def run_comparison(cohort: Path, out: Path, models: list[str], folds: int) -> None:
    """Admins only: ``nbrisk compare --cohort COHORT --out OUT`` from the page (same library calls)."""
    from nbrisk_core.compare.data import load_compare_data
    from nbrisk_core.compare.protocol import run_compare, write_outputs

    data = load_compare_data(cohort)
    write_outputs(run_compare(data, models=models, folds=folds), out)


auth.gate()
st.title("Models")
path = cohort_dir()
synthetic_banner(load_cohort_tables(str(path))[2] if (path / "cohort.json").exists() else None)
out = config.compare_dir()
command = f"nbrisk compare --cohort {path} --out {out}"
st.caption("Does the image add anything over the clinical factors? The clinical models, Swin-ART, the "
           "combined models and the synthetic demo's oracle under one protocol: stratified 5-fold "
           "cross-validation on the development cohort (the training part of the 8:2 split), then the test "
           "split with the development-fitted models (docs/compare.md).")

report_path = out / "report.json"
try:
    loaded = comparison(str(out), report_path.stat().st_mtime if report_path.is_file() else 0.0)
except InputError as error:
    show_error(error)
    loaded = None

if loaded is None:
    st.info(f"No model comparison at `{out}` yet. Make it with\n\n```\n{command}\n```\n\n"
            "(about half a minute on the demo; an administrator can also run it below).")
else:
    report, predictions = loaded
    meta = report.get("cohort", {})
    st.markdown(f"Cohort **{md(meta.get('name', '?'))}**: {report['n']} patients, development "
                f"{report['n_development']} / test {report['n_test']}, {report['folds']}-fold CV "
                f"(seed {report['seed']}). Paired tests: DeLong vs **swin_art**, NRI and IDI vs "
                "**clinical_lr**.")
    table = summary_table(report)
    st.dataframe(table, hide_index=True, width="stretch", key=f"{KEY}table")
    not_run = {n: e.get("reason", "") for n, e in report["models"].items() if e.get("status") != "ok"}
    for name, reason in not_run.items():
        st.warning(f"**{md(name)}** not run: {md(reason)}")
    sets = [s for s in ("test", "cv", "external") if len(predictions) and (predictions["set"] == s).any()]
    if sets:
        chosen = st.radio("Patients", sets, format_func=SET_LABELS.get, horizontal=True, key=f"{KEY}set")
        st.plotly_chart(compare_report.roc_figure(report, predictions, chosen), width="stretch",
                        key=f"{KEY}roc")
        if chosen != "cv":
            left, right = st.columns(2)
            left.plotly_chart(compare_report.calibration_figure(report, chosen), width="stretch",
                              key=f"{KEY}calibration")
            right.plotly_chart(compare_report.decision_figure(report, chosen), width="stretch",
                               key=f"{KEY}decision")
        else:
            st.caption("Calibration and decision curves are drawn for the test and external sets: the "
                       "pooled out-of-fold predictions come from five different fits.")
    for note in report.get("caveats", []):
        st.caption(note)
    if (out / "report.html").is_file():
        st.caption(f"Full report: `{out / 'report.html'}`")

if auth.is_admin():
    from nbrisk_core.compare.candidates import CANDIDATES

    with st.expander("Run the comparison (administrators)", expanded=loaded is None):
        st.caption(f"Writes to `{out}` (the same as `{command}`).")
        with st.form(f"{KEY}run"):
            models = st.multiselect("Models", list(CANDIDATES), default=list(CANDIDATES), key=f"{KEY}models")
            folds = st.number_input("Folds", min_value=2, max_value=10, value=5, step=1, key=f"{KEY}folds")
            if st.form_submit_button("Run the comparison", type="primary"):
                if not models:
                    st.error("Choose at least one model.")
                else:
                    try:
                        with st.spinner("Cross-validating and scoring the test split…"):
                            run_comparison(path, out, models, int(folds))
                    except InputError as error:
                        show_error(error)
                    else:
                        comparison.clear()
                        st.rerun()
