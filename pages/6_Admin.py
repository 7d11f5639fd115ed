"""Admin: users (add, disable, enable) and the audit trail (filter, export CSV). Admins only."""

from __future__ import annotations

from datetime import datetime, time, timezone

import pandas as pd
import streamlit as st

from nbrisk_core.errors import InputError
from nbrisk_core.store import audit, users
from nbrisk_core.store.models import ROLES
from nbrisk_ui import auth
from nbrisk_ui.cases import store_engine
from nbrisk_ui.common import cohort_dir, load_cohort_tables, synthetic_banner
from nbrisk_ui.text import md, show_error

auth.gate()
st.title("Admin")
path = cohort_dir()
synthetic_banner(load_cohort_tables(str(path))[2] if (path / "cohort.json").exists() else None)
if not auth.is_admin():
    st.error("This page is for administrators: your account has the clinician role.")
    st.stop()
if not auth.auth_required():
    st.info("Sign-in is off (local demo): everyone on this machine acts as administrator. Users added here "
            "sign in when the server runs with `NBRISK_AUTH=on`.")
engine = store_engine()
me = auth.current_username()

users_tab, audit_tab = st.tabs(["Users", "Audit trail"])

with users_tab:
    people = users.list_users(engine)
    if people:
        st.dataframe(pd.DataFrame([{"User": u.username, "Role": u.role, "Active": u.active,
                                    "Created": u.created_at.strftime("%Y-%m-%d") if u.created_at else ""}
                                   for u in people]), hide_index=True, width="stretch")
    else:
        st.info("No users yet.")
    with st.form("admin.add_user", clear_on_submit=True):
        st.markdown("**Add a user**")
        a1, a2 = st.columns(2)
        name = a1.text_input("User name", key="admin.add.name")
        role = a2.selectbox("Role", ROLES, key="admin.add.role")
        p1, p2 = st.columns(2)
        password = p1.text_input("Password", type="password", key="admin.add.password",
                                 autocomplete="new-password")
        repeat = p2.text_input("Repeat the password", type="password", key="admin.add.repeat",
                               autocomplete="new-password")
        if st.form_submit_button("Add user", type="primary"):
            if password != repeat:
                st.error("The two passwords differ; the user was not added.")
            else:
                try:
                    users.add_user(engine, name, password, role, by=me)
                except InputError as error:
                    show_error(error)
                else:
                    st.success(f"User {md(name.strip().lower())} added ({role}).")
    if people:
        d1, d2 = st.columns([3, 2])
        target = d1.selectbox("User", [u.username for u in people], key="admin.target")
        active = next(u.active for u in people if u.username == target)
        label = "Disable user" if active else "Enable user"
        d2.write("")
        if d2.button(label, key="admin.toggle", disabled=(target == me and active)):
            users.set_active(engine, target, not active, by=me)
            st.rerun()
        if target == me and active:
            st.caption("You cannot disable your own account.")

with audit_tab:
    f1, f2, f3, f4 = st.columns(4)
    who = f1.text_input("User", key="admin.audit.user")
    action = f2.selectbox("Action", ("any", *audit.ACTIONS), key="admin.audit.action")
    case_uid = f3.text_input("Case id", key="admin.audit.case")
    dates = f4.date_input("Between", value=(), key="admin.audit.dates")
    since = until = None
    if isinstance(dates, (tuple, list)) and len(dates) >= 1:
        since = datetime.combine(dates[0], time.min, tzinfo=timezone.utc)
        if len(dates) == 2:
            until = datetime.combine(dates[1], time.max, tzinfo=timezone.utc)
    events = audit.list_events(engine, username=who.strip().lower() or None,
                               action=None if action == "any" else action, case_uid=case_uid.strip() or None,
                               since=since, until=until, limit=5000)
    st.caption(f"{len(events)} event(s), newest first. The trail is append-only.")
    if events:
        st.dataframe(pd.DataFrame([{"When (UTC)": e.at.strftime("%Y-%m-%d %H:%M:%S"), "User": e.username,
                                    "Action": e.action, "Case": e.case_uid or "", "Model SHA-256": e.model_sha256 or "",
                                    "Detail": ", ".join(f"{k}={v}" for k, v in e.detail.items())} for e in events]),
                     hide_index=True, width="stretch")
        st.download_button("Export CSV", audit.events_to_csv(events), file_name="nbrisk_audit.csv", mime="text/csv",
                           icon=":material/download:", key="admin.audit.csv",
                           on_click=audit.record, args=(engine, me, "audit_exported"),
                           kwargs={"detail": {"events": len(events)}})
