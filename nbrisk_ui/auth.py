"""Sign-in gate of the dashboard: a sign-in form, the signed-in user in the sidebar, sign-out.

``streamlit_app.py`` calls :func:`gate` before ``st.navigation``, so no page is reachable without
signing in when sign-in is required; pages may call it again (it is idempotent within a run).
Sign-in is required when ``NBRISK_AUTH=on``, and by default whenever the server is not bound to
localhost; the local demo (``make run`` on 127.0.0.1) runs without it. Users, argon2 hashes, the
persisted rate limit and the audit trail live in :mod:`nbrisk_core.store`.
"""

from __future__ import annotations

import os
import secrets

import streamlit as st

from nbrisk_ui import state

#: who the audit trail names when sign-in is off (the local demo)
LOCAL_USER = "local"
SIGN_OUT_KEY = "nbrisk.auth.sign_out"


def auth_required(server_address: str | None = None) -> bool:
    """``NBRISK_AUTH=on|off``; default on whenever the server is not bound to localhost."""
    env = os.environ.get("NBRISK_AUTH", "").strip().lower()
    if env in {"on", "off"}:
        return env == "on"
    address = server_address or st.get_option("server.address") or ""
    return address not in {"127.0.0.1", "localhost", "::1"}


def session_key() -> str:
    """A random key of this browser session (the per-session sign-in rate limit counts on it)."""
    key = st.session_state.get(state.AUTH_SESSION_KEY)
    if key is None:
        key = secrets.token_hex(16)
        st.session_state[state.AUTH_SESSION_KEY] = key
    return key


def current_user() -> dict | None:
    """``{"username", "role"}`` of the signed-in user, or None."""
    return st.session_state.get(state.USER)


def current_username() -> str:
    """The name written to the case store and the audit trail (``local`` when sign-in is off)."""
    user = current_user()
    return user["username"] if user else LOCAL_USER


def is_admin() -> bool:
    """Admins manage users and read the audit trail; with sign-in off (local demo) everyone is."""
    if not auth_required():
        return True
    user = current_user()
    return bool(user and user.get("role") == "admin")


def _engine():
    from nbrisk_ui.cases import store_engine

    return store_engine()


def _sign_in_form() -> None:
    from nbrisk_core.errors import InputError
    from nbrisk_core.store import users

    st.title("NBRisk")
    st.caption("Sign in to continue. Research use only, not for clinical decisions.")
    with st.form("nbrisk.auth.sign_in", clear_on_submit=False):
        username = st.text_input("User name", key="nbrisk.auth.username", autocomplete="username")
        password = st.text_input("Password", type="password", key="nbrisk.auth.password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            # the TCP peer (None on localhost), never something stored in this session: a reload must
            # not reset the limit (nbrisk_core.store.users.authenticate)
            info = users.authenticate(_engine(), username, password, st.context.ip_address)
        except InputError as error:
            st.error(str(error))
        else:
            st.session_state[state.USER] = {"username": info.username, "role": info.role}
            # the password field is not kept in the session once it has been checked
            st.session_state.pop("nbrisk.auth.password", None)
            st.rerun()


def sign_out() -> None:
    """Write the sign-out to the audit trail and forget everything this session held."""
    from nbrisk_core.store import users

    user = current_user()
    if user:
        users.sign_out(_engine(), user["username"])
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def _user_box(user: dict) -> None:
    from streamlit.errors import StreamlitDuplicateElementKey

    # the keyed button comes first: when the page calls gate() again after the entry point, it raises
    # before anything else is drawn twice
    box = st.sidebar.container()
    try:
        clicked = box.button("Sign out", key=SIGN_OUT_KEY, icon=":material/logout:")
    except StreamlitDuplicateElementKey:
        return  # already drawn in this run
    box.caption(f"Signed in as **{user['username']}** ({user['role']})")
    if clicked:
        sign_out()
        st.rerun()


def signed_in() -> bool:
    """True when this session may see the pages: sign-in is off, or someone is signed in (whether
    that user is still active is checked by :func:`gate`)."""
    return not auth_required() or current_user() is not None


def gate():
    """Return the signed-in user (``{"username", "role"}``), or None when sign-in is off.

    When sign-in is required and nobody is signed in, show the sign-in form and stop the run.
    """
    if not auth_required():
        return None
    user = current_user()
    if user is not None and not _still_active(user):
        # disabled (or removed) since signing in: the session ends now, not at the next sign-in
        sign_out()
        user = None
    if user is None:
        _sign_in_form()
        st.stop()
    _user_box(user)
    return user


def _still_active(user: dict) -> bool:
    from nbrisk_core.store import users

    info = users.get_user(_engine(), user["username"])
    return bool(info and info.active and info.role == user.get("role"))
