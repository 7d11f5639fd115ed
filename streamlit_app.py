"""NBRisk dashboard: entry point and home page (``make run`` starts it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from nbrisk_core import __version__, research_notice
from nbrisk_ui import auth
from nbrisk_ui.common import cohort_dir, load_cohort_tables, synthetic_banner

PAGES_DIR = Path(__file__).parent / "pages"
#: (file, title, icon) of the pages in navigation order; pages not yet present are left out
PAGES = (
    ("1_Case.py", "Case", ":material/radiology:"),
    ("2_Risk.py", "Risk", ":material/troubleshoot:"),
    ("3_Prognosis.py", "Prognosis", ":material/monitoring:"),
    ("4_Cohort.py", "Cohort", ":material/groups:"),
    ("5_Cases.py", "Saved cases", ":material/folder_shared:"),
    ("6_Admin.py", "Admin", ":material/admin_panel_settings:"),
    ("7_Cohort_builder.py", "Cohort builder", ":material/fact_check:"),
    ("8_Models.py", "Models", ":material/leaderboard:"),
)


def home() -> None:
    st.title("NBRisk")
    st.caption(f"Neuroblastoma risk and prognosis from multiphase contrast CT and clinical data · v{__version__}")
    path = cohort_dir()
    if not (path / "cohort.json").exists():
        st.error(f"No cohort found at `{path}`. Build the demo cohort with `nbrisk demo build --out {path}` "
                 "(or `make run`, which builds it when it is missing).")
        return
    clinical, truth, meta = load_cohort_tables(str(path))
    synthetic_banner(meta)

    n = len(clinical)
    n_hr = int((clinical["risk_group"] == "HR").sum())
    n_nhr = int((clinical["risk_group"] == "NHR").sum())
    age = clinical["age_months"].to_numpy(dtype=float)
    follow_up = clinical["os_days"].to_numpy(dtype=float)
    cols = st.columns(4)
    cols[0].metric("Patients", n)
    cols[1].metric("High risk / non-high risk", f"{n_hr} / {n_nhr}",
                   f"{n - n_hr - n_nhr} unknown" if n_hr + n_nhr < n else None,
                   delta_color="off", delta_arrow="off")
    q1, med, q3 = np.percentile(age, [25, 50, 75])
    cols[2].metric("Median age (IQR)", f"{med:.1f} mo", f"{q1:.1f}–{q3:.1f} mo",
                   delta_color="off", delta_arrow="off")
    f1, fmed, f3 = np.percentile(follow_up, [25, 50, 75])
    cols[3].metric("Median follow-up (IQR)", f"{fmed:.0f} d", f"{f1:.0f}–{f3:.0f} d",
                   delta_color="off", delta_arrow="off")

    from nbrisk_core.prognosis.plots import kaplan_meier_figure

    st.plotly_chart(
        # a real cohort may lack the risk group of some patients: their own curve, named so
        kaplan_meier_figure(clinical["os_days"], clinical["os_event"],
                            clinical["risk_group"].fillna("unknown"),
                            title="Overall survival by risk group"),
        width="stretch",
    )
    st.markdown(
        "**Workflow.** *Case*: upload a three-phase CT study and pick the max-area tumour slice per phase. "
        "*Risk*: high-risk probability per Swin-T model with Grad-CAM. *Prognosis*: enter labs and see "
        "the individual survival curve against the cohort. *Cohort*: the model search and its evaluation."
    )
    for file, title, icon in PAGES:
        if (PAGES_DIR / file).exists():
            st.page_link(f"pages/{file}", label=title, icon=icon)
    seed = f" · seed {meta['seed']}" if meta.get("seed") is not None else ""   # generated cohorts only
    notice = research_notice(bool(meta.get("synthetic", False)))
    st.caption(f"Cohort: `{path}` · {meta.get('name', 'cohort')}{seed}. {notice}")


@st.cache_resource(show_spinner=False)
def sweep_stale_uploads() -> int:
    """Once per server process, at its first run: raw uploads a crashed or killed server left behind."""
    from nbrisk_core.imaging.upload import sweep_stale_uploads

    return len(sweep_stale_uploads())


def main() -> None:
    st.set_page_config(page_title="NBRisk", page_icon=":material/health_and_safety:", layout="wide")
    sweep_stale_uploads()
    pages = [st.Page(home, title="Home", icon=":material/home:", default=True)]
    pages += [st.Page(f"pages/{file}", title=title, icon=icon)
              for file, title, icon in PAGES if (PAGES_DIR / file).exists()]
    # navigation is declared before the sign-in gate, so that every run (the sign-in form's too) has the
    # same page structure; the menu stays hidden until someone is signed in
    navigation = st.navigation(pages, position="sidebar" if auth.signed_in() else "hidden")
    auth.gate()
    navigation.run()


if __name__ == "__main__":
    # a script run: Streamlit runs this file as ``__main__`` for every session
    main()
else:
    # imported by the ASGI server that ``streamlit run streamlit_app.py`` starts when it finds an
    # ``st.App`` here: Streamlit's routes plus the sign-in cookie route, behind the session guard
    # (nbrisk_ui/websession.py explains why the session id alone is not proof of sign-in)
    from starlette.middleware import Middleware

    from nbrisk_ui import warmup, websession

    # warmup.lifespan: once the runtime runs, a background thread loads the cohort's prognosis bundle and
    # the pages' libraries, so that a user's first Prognosis page only renders (NBRISK_WARM_START=off: not)
    app = st.App(__file__, routes=websession.routes(), middleware=[Middleware(websession.SessionGuard)],
                 lifespan=warmup.lifespan)
