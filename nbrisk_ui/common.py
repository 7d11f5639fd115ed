"""Page furniture: the synthetic-data banner, the research notice, cached cohort loading."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from nbrisk_core import RESEARCH_NOTICE, config


def synthetic_banner(meta: dict | None) -> None:
    """The banner every page shows while a synthetic cohort (``cohort.json`` ``synthetic``) is loaded, or
    when no cohort could be read (the app then offers to build the demo); never on a real cohort."""
    if meta is None or meta.get("synthetic", False):
        st.warning(
            "**Synthetic demo data.** The cohort, the images and the demo models are generated "
            "with known truth; no real patient is shown. " + RESEARCH_NOTICE,
            icon=":material/science:",
        )


def cohort_dir() -> Path:
    return config.demo_cohort_dir()


@st.cache_data(show_spinner="Loading the cohort…")
def load_cohort_tables(path: str):
    """Clinical table, truth table (None on a real cohort) and metadata of the cohort at ``path`` (cached
    per path); any cohort of format v1 (docs/cohort-format.md), the demo or an imported one."""
    from nbrisk_core.cohort import load_cohort

    cohort = load_cohort(Path(path))
    return cohort.clinical, cohort.truth, cohort.meta


def cohort_sha256(path) -> str:
    """:func:`nbrisk_core.cohort.format.cohort_hash` of the cohort at ``path``, recomputed only when a file
    it reads changed (size or modification time): a page rerun stats the files instead of reading them."""
    path = Path(path)
    files = [path / "clinical.csv", *sorted((path / "slices").rglob("*.npz"))]
    signature = tuple((f.as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _cohort_sha256(str(path), signature)


@st.cache_data(show_spinner=False, max_entries=8)
def _cohort_sha256(path: str, signature: tuple) -> str:
    from nbrisk_core.cohort.format import cohort_hash

    return cohort_hash(Path(path))


def switch_page_or_say(page: str, message: str) -> None:
    """``st.switch_page(page)``; where the page runs outside the app's navigation (an AppTest, a bare
    ``streamlit run pages/X.py``) there is nothing to switch to, so ``message`` is shown instead."""
    try:
        st.switch_page(page)
    except st.errors.StreamlitAPIException:
        st.success(message)
