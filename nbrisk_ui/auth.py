"""Sign-in gate of the dashboard: a sign-in form, the signed-in user in the sidebar, sign-out.

``streamlit_app.py`` calls :func:`gate` before ``st.navigation``, so no page is reachable without
signing in when sign-in is required; pages may call it again (it is idempotent within a run).
Sign-in is required unless ``NBRISK_AUTH=off`` is set explicitly (``make run`` sets it for the local
demo and says so): where the server listens says nothing about who reaches it (a reverse proxy on the
same host publishes a localhost server). Users, argon2 hashes, the persisted rate limit and the audit
trail live in :mod:`nbrisk_core.store`.

The proof of sign-in is a cookie, not the Streamlit session id (which URLs and logs show): see
:mod:`nbrisk_ui.websession`. Every run compares the cookie the websocket carried with the user the
session holds, and signs the session out (audited) when they differ.
"""

from __future__ import annotations

import streamlit as st

from nbrisk_ui import state
from nbrisk_ui.resources import auth_required, store_engine

#: who the audit trail names when sign-in is off (the local demo)
LOCAL_USER = "local"
SIGN_OUT_KEY = "nbrisk.auth.sign_out"


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
            info = users.authenticate(store_engine(), username, password, st.context.ip_address)
        except InputError as error:
            st.error(str(error))  # fixed texts (users.SignInError), no value of the user in them
        else:
            # the password field is not kept in the session once it has been checked
            st.session_state.pop("nbrisk.auth.password", None)
            _start_session({"username": info.username, "role": info.role})


_REDEEM_SCRIPT = """<script>
(async () => {
  const xsrf = (document.cookie.match(/(?:^|; )_streamlit_xsrf=([^;]*)/) || [])[1] || "";
  const response = await fetch(window.location.origin + %(path)s, {
    method: "POST", body: %(code)s, credentials: "same-origin", cache: "no-store",
    headers: {"Content-Type": "text/plain", "X-Xsrftoken": xsrf}});
  if (response.ok) { window.location.reload(); }
  else { document.getElementById("nbrisk-sign-in-state").textContent = "Sign-in failed: " + response.status; }
})();
</script><p id="nbrisk-sign-in-state">Signing in...</p>"""


def _start_session(user: dict) -> None:
    """The password is right: hand the browser its sign-in cookie (or, without a browser, sign in)."""
    import json

    from nbrisk_ui import websession

    proof = _session_proof()
    if not proof.served:
        # no browser behind this run (AppTest): nobody can hold a cookie, nor steal a session id
        st.session_state[state.USER] = user
        st.rerun()
    code = websession.REGISTRY.issue_code(user["username"], user["role"])
    # the page exchanges the one-time code for an HttpOnly cookie and reloads, so that the next
    # websocket carries it (a script run cannot set a cookie itself)
    st.html(_REDEEM_SCRIPT % {"path": json.dumps(websession.redeem_path()), "code": json.dumps(code)},
            unsafe_allow_javascript=True)
    st.stop()


class _Proof:
    """What this run's connection proves: ``served`` (a browser is behind it), the cookie and its user."""

    def __init__(self, served: bool, token: str | None = None, who=None, session_id: str | None = None,
                 connected: bool = True):
        self.served, self.token, self.who, self.session_id = served, token, who, session_id
        self.connected = connected


def _session_proof() -> _Proof:
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    from nbrisk_ui import websession

    ctx = get_script_run_ctx()
    # AppTest installs a stand-in (a mock of Runtime): no server, no browser, no websocket
    if ctx is None or not Runtime.exists() or type(Runtime.instance()) is not Runtime:
        return _Proof(served=False)
    client = Runtime.instance().get_client(ctx.session_id)
    if client is None:
        return _Proof(served=True, session_id=ctx.session_id, connected=False)
    token = client.client_context.cookies.get(websession.COOKIE_NAME)
    return _Proof(True, token, websession.REGISTRY.lookup(token), ctx.session_id)


def _forget_session(proof: _Proof | None = None) -> None:
    """Clear everything this session held, unbind it, and release its media (Grad-CAM images...)."""
    from nbrisk_ui import websession

    proof = proof or _session_proof()
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if proof.session_id:
        websession.REGISTRY.release(proof.session_id)
        _release_media(proof.session_id)


def _release_media(session_id: str) -> None:
    """Stop serving a session's ``/media`` files now rather than at the end of some later run.

    Streamlit drops a session's media references at the start of its next full run and deletes
    unreferenced files at the end of a run; download files (``st.download_button``) survive one more
    run of any session, and a second tab's files stay until that tab runs again. At sign-out the
    references go now and both passes run, so every file only these sessions used answers 404 at once.
    (A file that a session of another sign-in shows, the same bytes, stays for that session.) This uses
    the runtime's media file manager, which Streamlit does not document as public API.
    """
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return
    manager = Runtime.instance().media_file_mgr
    manager.clear_session_refs(session_id)
    manager.remove_orphaned_files()  # media files go; download files are marked
    manager.remove_orphaned_files()  # marked download files go


def sign_out() -> None:
    """Write the sign-out to the audit trail, end the sign-in cookie, forget everything this session held."""
    from nbrisk_core.store import users

    from nbrisk_ui import websession

    proof = _session_proof()
    user = current_user()
    if user:
        users.sign_out(store_engine(), user["username"])
    # every tab of this sign-in is signed out with it: their next run shows the sign-in form, and their
    # media (Grad-CAM overlays, exports) stop being served now
    for other in websession.REGISTRY.revoke(proof.token):
        _release_media(other)
    _forget_session(proof)


def _refuse_session(user: dict, proof: _Proof) -> None:
    """The run's cookie does not prove this session's sign-in: sign the session out, audited, show nothing.

    The cookie (when there is one) belongs to someone else or to nobody: it is not revoked here, so that a
    client knowing only a session id cannot end another person's sign-in in their own browser.
    """
    from nbrisk_core.store import audit

    if proof.token is not None and proof.who is None:
        reason = "sign-in cookie no longer valid (signed out in another tab, or expired)"
    else:
        reason = "session proof mismatch: the connection did not carry this sign-in's cookie"
    audit.record(store_engine(), user["username"], "sign_out", detail={"reason": reason})
    _forget_session(proof)


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
    """True when this session may see the pages: sign-in is off, or the connection's sign-in cookie is
    valid (without a browser behind the run, AppTest: someone is signed in). Whether that user is still
    active, and still the session's user, is checked by :func:`gate`."""
    if not auth_required():
        return True
    proof = _session_proof()
    return proof.who is not None if proof.served else current_user() is not None


def gate():
    """Return the signed-in user (``{"username", "role"}``), or None when sign-in is off.

    When sign-in is required and nobody is signed in, show the sign-in form and stop the run. Every run
    checks the sign-in cookie the connection carried (:mod:`nbrisk_ui.websession`): a session whose
    user the cookie does not prove is signed out before anything is drawn; a browser whose cookie is
    valid is signed in (a reload, a second tab).
    """
    if not auth_required():
        return None
    proof = _session_proof()
    if proof.served and not proof.connected:
        st.stop()  # the websocket went away during the run: nobody to show anything to
    user = current_user()
    if user is not None and proof.served and not _proves(proof, user):
        _refuse_session(user, proof)
        user = None
    if user is None and proof.who is not None:
        user = {"username": proof.who.username, "role": proof.who.role}
        st.session_state[state.USER] = user
    if user is not None and not _still_active(user):
        # disabled (or removed) since signing in: the session ends now, not at the next sign-in
        sign_out()
        user = None
    if user is None:
        _sign_in_form()
        st.stop()
    if proof.served:
        from nbrisk_ui import websession

        # only this cookie may resume this session, upload into it or act through it from now on
        websession.REGISTRY.bind(proof.session_id, proof.token)
    _user_box(user)
    return user


def _proves(proof: _Proof, user: dict) -> bool:
    return proof.who is not None and (proof.who.username, proof.who.role) == (user["username"],
                                                                               user.get("role"))


def _still_active(user: dict) -> bool:
    from nbrisk_core.store import users

    info = users.get_user(store_engine(), user["username"])
    return bool(info and info.active and info.role == user.get("role"))
