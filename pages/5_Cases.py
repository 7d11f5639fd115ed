"""Saved cases: list, search and filter, reopen, compare two side by side, export, share, delete.

Only the cases the signed-in user may see are listed (their own, those shared with them or their
team, all for admins); the store enforces the same rule on every open, export, change and delete
(``nbrisk_core.store.access``).
"""

from __future__ import annotations

from datetime import datetime, time, timezone
from pathlib import Path

import pandas as pd
import streamlit as st

from nbrisk_core.errors import InputError
from nbrisk_core.store import cases, users
from nbrisk_core.store.models import CASE_STATUSES
from nbrisk_ui import auth, state
from nbrisk_ui import pacs as pacs_ui
from nbrisk_ui.cases import STATUS_LABELS, close_case, export_buttons, open_case, store_engine
from nbrisk_ui.common import cohort_dir, load_cohort_tables, switch_page_or_say, synthetic_banner
from nbrisk_ui.text import md, show_error

#: where "Open" sends the user, first page that exists
OPEN_TARGETS = ("pages/2_Risk.py", "pages/3_Prognosis.py", "pages/1_Case.py")
ANY = "any"

auth.gate()
st.title("Saved cases")
path = cohort_dir()
synthetic_banner(load_cohort_tables(str(path))[2] if (path / "cohort.json").exists() else None)
engine = store_engine()
me = auth.current_username()

current = st.session_state.get(state.CASE_ID)
if current:
    left, right = st.columns([4, 1])
    label = md(st.session_state.get(state.CASE_LABEL, ""))
    left.info(f"Case **{md(current)}** ({label}) is open in this session, "
              f"version {st.session_state.get(state.CASE_VERSION)}.")
    if right.button("Close it", key="cases.close"):
        close_case()
        st.rerun()

# ------------------------------------------------------------------ filters
with st.container(border=True):
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    search = c1.text_input("Search (label, case id, notes)", key="cases.search")
    status = c2.selectbox("Status", (ANY, *CASE_STATUSES), format_func=lambda s: STATUS_LABELS.get(s, "Any"),
                          key="cases.status")
    risk_class = c3.selectbox("Risk class", (ANY, "HR", "NHR"), format_func=lambda s: "Any" if s == ANY else s,
                              key="cases.risk")
    mlrs_group = c4.selectbox("MLRS group", (ANY, "high", "low"), format_func=lambda s: "Any" if s == ANY else s,
                              key="cases.mlrs")
    d1, d2 = st.columns([3, 6])
    dates = d1.date_input("Created between", value=(), key="cases.dates")
    mine = d2.checkbox("Only my cases", key="cases.mine")

since = until = None
if isinstance(dates, (tuple, list)) and len(dates) >= 1:
    since = datetime.combine(dates[0], time.min, tzinfo=timezone.utc)
    if len(dates) == 2:
        until = datetime.combine(dates[1], time.max, tzinfo=timezone.utc)
try:
    rows = cases.list_cases(engine, me, status=None if status == ANY else status,
                            risk_class=None if risk_class == ANY else risk_class,
                            mlrs_group=None if mlrs_group == ANY else mlrs_group, since=since, until=until,
                            search=search or None, created_by=me if mine else None)
except InputError as error:
    show_error(error)
    st.stop()

if not rows:
    st.info("No saved cases match (you see your own cases and those shared with you). Save a case from "
            "the Risk or Prognosis page with **Save case**.")
    st.stop()

table = pd.DataFrame([{
    "Case id": r.case_uid, "Label": r.label, "Status": STATUS_LABELS[r.status], "Risk class": r.risk_class,
    "P(HR)": r.hr_probability, "MLRS": r.mlrs, "MLRS group": r.mlrs_group, "Age (months)": r.age_months,
    "Sex": r.sex, "Created": r.created_at.strftime("%Y-%m-%d %H:%M"), "By": r.created_by, "Owner": r.owner,
    "Shared": "yes" if r.shared else "",
    "Changed": r.updated_at.strftime("%Y-%m-%d %H:%M"), "Changed by": r.updated_by, "Version": r.version,
} for r in rows])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"P(HR)": st.column_config.NumberColumn(format="%.2f"),
                            "MLRS": st.column_config.NumberColumn(format="%.3f")})
by_uid = {r.case_uid: r for r in rows}


def _describe(uid: str) -> str:
    r = by_uid[uid]
    return f"{uid} · {r.label} · {STATUS_LABELS[r.status]}" + (f" · {r.risk_class}" if r.risk_class else "")


open_tab, compare_tab = st.tabs(["Open, export, delete", "Compare two cases"])

with open_tab:
    chosen = st.selectbox("Case", list(by_uid), format_func=_describe, key="cases.chosen")
    summary = by_uid[chosen]
    b1, b2 = st.columns([1, 3])
    if b1.button("Open case", type="primary", icon=":material/open_in_new:", key="cases.open"):
        try:
            open_case(chosen)
        except InputError as error:
            show_error(error)
        else:
            target = next((p for p in OPEN_TARGETS if (Path(__file__).parent.parent / p).exists()), None)
            message = f"Case {chosen} is open in this session."
            if target is not None:
                switch_page_or_say(target, message)
            else:
                st.success(message)
    b2.caption("Opening puts the chosen slices, the risk and prognosis results and the clinical values back "
               "into the Case, Risk and Prognosis pages.")
    export_buttons(summary.case_uid, summary.version, summary.label, key=f"cases.export.{chosen}")
    pacs_ui.push_controls(chosen, me, engine)  # results into the archive study (nbrisk_ui.pacs)

    me_info = users.get_user(engine, me)
    may_manage = summary.owner == me or bool(me_info and me_info.is_admin)
    with st.expander("Share this case", icon=":material/share:"):
        try:
            shared = cases.sharing(engine, chosen, me)
        except InputError as error:
            show_error(error)
        else:
            st.caption(f"Owner: **{md(shared.owner)}**. Users it is shared with, and the members of the owner's "
                       "team when it is shared with the team, can see, open, export and change it; only the "
                       "owner or an admin can delete or share it. Every change of sharing is audited.")
            if not may_manage:
                st.write("Shared with: " + (", ".join(shared.users) or "no users")
                         + (f"; team {shared.team}" if shared.team else ""))
            else:
                people = {u.username: u for u in users.list_users(engine)}  # the owner among them
                others = [name for name, u in people.items() if u.active and name != shared.owner]
                picked = st.multiselect("Shared with users", sorted(set(others) | set(shared.users)),
                                        default=list(shared.users), key=f"cases.share.users.{chosen}")
                owner_info = people.get(shared.owner)
                owner_team = owner_info.team if owner_info else None
                team_name = owner_team or "the owner has no team"
                with_team = st.checkbox(f"Shared with the owner's team ({team_name})",
                                        value=shared.team is not None, disabled=owner_team is None,
                                        key=f"cases.share.team.{chosen}")
                if st.button("Save sharing", key=f"cases.share.save.{chosen}", icon=":material/share:"):
                    try:
                        shared = cases.set_sharing(engine, chosen, me, users=picked, team=with_team)
                    except InputError as error:
                        show_error(error)
                    else:
                        st.success(f"Case {chosen} is shared with "
                                   + (", ".join(shared.users) or "no users")
                                   + (f" and team {shared.team}" if shared.team else "") + ".")

    if not may_manage:
        st.caption(f"Only its owner ({summary.owner}) or an admin can delete this case.")
    else:
        with st.expander("Delete this case", icon=":material/delete:"):
            st.write("The case disappears from the lists and pages. It stays in the database, and the "
                     "deletion is written to the audit trail.")
            confirm = st.checkbox(f"Yes, delete case {md(chosen)} ({md(summary.label)})",
                                  key=f"cases.confirm.{chosen}")
            if st.button("Delete case", disabled=not confirm, key=f"cases.delete.{chosen}"):
                try:
                    cases.delete_case(engine, chosen, me, version=summary.version)
                except InputError as error:
                    show_error(error)
                else:
                    if st.session_state.get(state.CASE_ID) == chosen:
                        close_case()
                    st.success(f"Case {chosen} deleted.")
                    st.rerun()

with compare_tab:
    uids = list(by_uid)
    if len(uids) < 2:
        st.info("Save at least two cases to compare them.")
    else:
        c1, c2 = st.columns(2)
        first = c1.selectbox("First case", uids, index=0, format_func=_describe, key="cases.compare.a")
        second = c2.selectbox("Second case", uids, index=1, format_func=_describe, key="cases.compare.b")
        from nbrisk_core import service
        from nbrisk_core.clinical.schema import CLINICAL_VARIABLES
        from nbrisk_core.report import clinical_values
        from nbrisk_core.report.figures import slice_png

        try:
            compared = [service.open_case(engine, uid, me) for uid in (first, second)]
        except InputError as error:
            show_error(error)
            st.stop()
        for column, case in zip((c1, c2), compared, strict=False):
            risk, prognosis = case.risk, case.prognosis
            with column:
                st.markdown(f"### {md(case.label)}  \n{md(case.stored.case_uid)} · "
                            f"version {case.stored.version} · {STATUS_LABELS[case.status]}")
                m1, m2, m3 = st.columns(3)
                m1.metric("P(high risk)", "–" if risk is None else f"{risk.p_high_risk:.2f}")
                m2.metric("Risk class", "–" if risk is None else risk.risk_class)
                m3.metric("MLRS group", "–" if prognosis is None else prognosis.group,
                          None if prognosis is None else f"MLRS {prognosis.mlrs:.3g}", delta_color="off")
                cams = risk.cams if risk is not None else {}
                images = [(p.upper(), slice_png(s.plane, cams.get(p), max_side=256, is_hu=s.is_hu))
                          for p, s in case.slices.items()]
                if images:
                    st.image([png for _, png in images], caption=[p for p, _ in images], width=150)

        tables = [{c.name: c for c in clinical_values(case)} for case in compared]
        names = [v.name for v in CLINICAL_VARIABLES if v.name in tables[0] or v.name in tables[1]]

        def _value(table, name):
            c = table.get(name)
            if c is None or (c.value is None and not c.imputed):
                return ""
            shown = "value not stored" if c.value is None else (
                f"{c.value:.4g}" if isinstance(c.value, float) else str(c.value))
            return f"{shown} {c.unit}".strip() + (" (imputed)" if c.imputed else "")

        if names:
            columns = {"Variable": names}
            for case, uid, table in zip(compared, (first, second), tables, strict=True):
                columns[f"{case.label} ({uid})"] = [_value(table, n) for n in names]
            st.dataframe(pd.DataFrame(columns),
                         hide_index=True, width="stretch")
