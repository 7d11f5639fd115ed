"""Sign-in bound to a browser cookie, checked at the transport and on every run.

Why a cookie of our own
-----------------------
A Streamlit session is addressed by its session id, and that id is not a secret: the browser sends it
in every upload URL (``PUT /_stcore/upload_file/<session id>/<file id>``), proxies and the server log
record those URLs, and a websocket that names it in ``Sec-WebSocket-Protocol`` resumes the session (for
sessions without ``st.login``, :meth:`AppSession.matches_user_info` compares ``{}`` with ``{}``). So the
session id cannot be the proof of sign-in. The proof here is a random secret that

- the server hands to the browser only in a ``Set-Cookie`` header (``HttpOnly``: page scripts cannot read
  it; ``SameSite=Strict``: no other site's page can make the browser send it; ``Secure`` behind HTTPS),
- is new at every sign-in (rotation: a secret seen before a sign-in is worth nothing after it) and dead
  at sign-out, and is held by the server only as a SHA-256 hash,
- the browser sends with the websocket handshake and with uploads, never in a URL.

What was considered and not used:

- ``_streamlit_xsrf`` (Streamlit's XSRF cookie) also travels with the websocket and is absent from URLs,
  but it is readable by page scripts (the frontend copies it into headers), is kept across sign-ins and
  sign-outs, and is the same for every tab: a proof of "same browser", not of "this sign-in".
- ``st.login`` and its signed ``_streamlit_user`` cookie (set by Streamlit's ``/oauth2callback`` route)
  need an OpenID Connect identity provider; a site that has one can use it. Local accounts cannot be put
  into that cookie without patching Streamlit's auth routes.
- A script run talks to the browser over the websocket only; it cannot set a cookie, let alone an
  ``HttpOnly`` one. Streamlit 1.67's ``st.App`` (the ASGI app that ``streamlit run`` starts when the
  entry point defines one) accepts extra routes and middleware, so both live here without patching
  Streamlit: :func:`routes` (the cookie is set by an HTTP response) and :class:`SessionGuard`.

The flow
--------
1. The sign-in form checks the password in the script run and asks :meth:`SessionRegistry.issue_code`
   for a one-time code (60 s, single use), which the run hands to the page.
2. The page POSTs the code (body, not URL; with the XSRF header) to ``/nbrisk/session``; the response
   sets the cookie, and the page reloads, so that the new websocket carries it.
3. Every run (:func:`nbrisk_ui.auth.gate`) reads the cookie the websocket carried (``st.context.cookies``)
   and signs the session out, audited, when it does not match the user the session holds.
4. :class:`SessionGuard` sits in front of Streamlit's own routes: a websocket that asks to resume a
   signed-in session without that session's cookie gets a fresh (signed-out) session instead, and so
   does one that asks for a signed-out session another browser created (told apart by the XSRF token,
   which URLs and logs do not show either: a session mid-sign-in is not up for grabs); uploads
   into a session need that session's cookie; ``clear_cache`` (which empties every user's caches) is
   dropped unless the cookie belongs to a signed-in administrator; a fragment rerun (which does not run
   the gate) from a connection without a valid cookie is turned into a full run, so the gate decides.

The registry lives in this process's memory: one server process per site (a restart signs everyone
out). Behind several replicas, sticky sessions are needed anyway (Streamlit sessions are per process).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

COOKIE_NAME = "nbrisk_session"
#: where the page redeems its one-time code for the cookie (POST only), under ``server.baseUrlPath``
REDEEM_ROUTE = "nbrisk/session"
#: how long a one-time code may wait for the page to redeem it
CODE_TTL_S = 60.0
#: how long a sign-in lasts at most (a working day); the browser forgets the cookie when it closes
SESSION_LIFETIME_S = 12 * 3600.0
#: how many sessions' creating browsers are remembered (oldest forgotten first)
MAX_CREATORS = 50_000

_LOG = logging.getLogger(__name__)
_STREAM_PATH = re.compile(r"(?:/.*)?/_stcore/stream$")
_UPLOAD_PATH = re.compile(r"(?:/.*)?/_stcore/upload_file/(?P<session_id>[^/]+)/[^/]+$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    """Who a sign-in cookie belongs to."""

    username: str
    role: str
    expires_at: float  # time.monotonic()


class SessionRegistry:
    """Sign-ins of this server process: one-time codes, cookie secrets (hashed), bound sessions.

    Thread-safe: script threads write it, the ASGI event loop reads it.
    """

    def __init__(self, *, code_ttl_s: float = CODE_TTL_S, lifetime_s: float = SESSION_LIFETIME_S):
        self._code_ttl_s = code_ttl_s
        self._lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._codes: dict[str, tuple[str, str, float]] = {}  # code hash -> (username, role, deadline)
        self._tokens: dict[str, SignedIn] = {}  # cookie hash -> who
        self._sessions: dict[str, str] = {}  # Streamlit session id -> cookie hash it is bound to
        # Streamlit session id -> hash of the XSRF token of the browser that created it (signed out or not)
        self._creators: OrderedDict[str, str] = OrderedDict()

    def issue_code(self, username: str, role: str) -> str:
        """A one-time code for a sign-in whose password has just been checked."""
        code = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._codes = {k: v for k, v in self._codes.items() if v[2] > now}
            self._codes[_digest(code)] = (username, role, now + self._code_ttl_s)
        return code

    def redeem(self, code: str) -> tuple[str, SignedIn] | None:
        """Exchange a code (once) for a new cookie secret; None when unknown, used or expired."""
        now = time.monotonic()
        with self._lock:
            entry = self._codes.pop(_digest(code), None)
            if entry is None or entry[2] <= now:
                return None
            token = secrets.token_urlsafe(32)
            who = SignedIn(entry[0], entry[1], now + self._lifetime_s)
            self._tokens[_digest(token)] = who
            return token, who

    def lookup(self, token: str | None) -> SignedIn | None:
        """The sign-in a cookie value stands for, or None (absent, unknown, signed out, expired)."""
        if not token:
            return None
        key = _digest(token)
        with self._lock:
            who = self._tokens.get(key)
            if who is not None and who.expires_at <= time.monotonic():
                self._drop_token(key)
                who = None
            return who

    def bind(self, session_id: str, token: str) -> None:
        """Record that ``session_id`` is signed in with this cookie (only this cookie may resume it)."""
        with self._lock:
            self._sessions[session_id] = _digest(token)

    def is_bound(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._sessions

    def session_accepts(self, session_id: str, token: str | None) -> bool:
        """May a request carrying ``token`` act on ``session_id``? Only with the cookie it is bound to."""
        with self._lock:
            bound = self._sessions.get(session_id)
        return bound is not None and token is not None and secrets.compare_digest(bound, _digest(token))

    def note_creator(self, session_id: str, browser_key: str | None) -> None:
        """Remember which browser (its XSRF token) created a session; the first connection wins."""
        if not browser_key:
            return
        with self._lock:
            if session_id not in self._creators:
                self._creators[session_id] = _digest(browser_key)
                while len(self._creators) > MAX_CREATORS:
                    self._creators.popitem(last=False)

    def creator_accepts(self, session_id: str, browser_key: str | None) -> bool:
        """May this browser resume the session? True when it created it, or when nobody is on record."""
        with self._lock:
            creator = self._creators.get(session_id)
        if creator is None:
            return True
        return browser_key is not None and secrets.compare_digest(creator, _digest(browser_key))

    def owner_of(self, session_id: str) -> SignedIn | None:
        with self._lock:
            bound = self._sessions.get(session_id)
            return self._tokens.get(bound) if bound else None

    def release(self, session_id: str) -> None:
        """The session is signed out: it no longer needs (or accepts) a cookie."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def revoke(self, token: str | None) -> list[str]:
        """Sign-out: the cookie is dead, and so is every session bound to it (their ids are returned)."""
        if not token:
            return []
        with self._lock:
            return self._drop_token(_digest(token))

    def _drop_token(self, key: str) -> list[str]:  # caller holds the lock
        self._tokens.pop(key, None)
        sessions = [s for s, k in self._sessions.items() if k == key]
        for session_id in sessions:
            del self._sessions[session_id]
        return sessions


#: the registry of this server process (the middleware and the script runs share it)
REGISTRY = SessionRegistry()


def auth_on() -> bool:
    from nbrisk_ui.resources import auth_required

    return auth_required()


# ===================================================================== HTTP: code -> cookie
def _cookie_header(token: str, secure: bool) -> str:
    return (f"{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict"
            + ("; Secure" if secure else ""))


def _is_https(scope_scheme: str, headers) -> bool:
    # behind a TLS-terminating reverse proxy the app sees http; the proxy says https (see docs/security.md)
    forwarded = (headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
    return scope_scheme in {"https", "wss"} or forwarded == "https"


async def _redeem(request):
    from starlette.responses import Response
    from streamlit.web.server.starlette.starlette_app_utils import validate_xsrf_token
    from streamlit.web.server.starlette.starlette_server_config import XSRF_COOKIE_NAME

    # the page's own request carries the XSRF header (double submit): another site cannot make a browser
    # redeem a code, so it cannot sign someone in as the attacker (login CSRF)
    if not validate_xsrf_token(request.headers.get("x-xsrftoken"), request.cookies.get(XSRF_COOKIE_NAME)):
        return Response("XSRF token missing or invalid", status_code=403)
    body = await request.body()
    if len(body) > 256:
        return Response("code too long", status_code=413)
    redeemed = REGISTRY.redeem(body.decode("ascii", "replace").strip())
    if redeemed is None:
        return Response("unknown or expired sign-in code", status_code=403)
    token, _ = redeemed
    # the cookie secret this browser held before (if any) is signed out: one sign-in, one secret
    REGISTRY.revoke(request.cookies.get(COOKIE_NAME))
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    secure = _is_https(request.url.scheme, request.headers)
    response.headers.append("Set-Cookie", _cookie_header(token, secure))
    return response


def redeem_path() -> str:
    """``/nbrisk/session``, under ``server.baseUrlPath`` when one is set (``st.App`` does not prefix)."""
    from streamlit import config
    from streamlit.url_util import make_url_path

    return make_url_path(config.get_option("server.baseUrlPath") or "", REDEEM_ROUTE)


def routes() -> list:
    """The extra routes of the ASGI app (see ``streamlit_app.py``)."""
    from starlette.routing import Route

    return [Route(redeem_path(), _redeem, methods=["POST"])]


# ===================================================================== the guard in front of Streamlit
def _cookies_from(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's cookies, parsed as Starlette parses them for Streamlit (``st.context.cookies``), so
    that the guard and the script run judge the same values (a repeated name: the last one)."""
    from starlette.requests import cookie_parser

    for name, value in headers:
        if name.lower() == b"cookie":  # Starlette reads the first Cookie header only
            return cookie_parser(value.decode("latin-1"))
    return {}


def _browser_key(jar: dict[str, str]) -> str | None:
    """The browser's XSRF token (the token, not the cookie string: its mask changes at every page load)."""
    from streamlit.web.server.starlette.starlette_app_utils import decode_xsrf_token_string
    from streamlit.web.server.starlette.starlette_server_config import XSRF_COOKIE_NAME

    token, _ = decode_xsrf_token_string(jar.get(XSRF_COOKIE_NAME, ""))
    return token.hex() if token else None


def _audit_refusal(username: str, reason: str) -> None:
    try:
        from nbrisk_core.store import audit
        from nbrisk_ui.resources import store_engine

        audit.record(store_engine(), username, "sign_out", detail={"reason": reason})
    except Exception:  # the refusal stands even when the trail cannot be written; the log says so
        _LOG.exception("could not write the refused session to the audit trail")


class SessionGuard:
    """ASGI middleware in front of Streamlit's routes (see the module docstring). No-op with sign-in off."""

    def __init__(self, app, registry: SessionRegistry | None = None):
        self.app = app
        self.registry = registry or REGISTRY

    async def __call__(self, scope, receive, send):
        if scope["type"] not in {"http", "websocket"} or not auth_on():
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if scope["type"] == "websocket" and _STREAM_PATH.match(path):
            return await self._stream(scope, receive, send)
        upload = _UPLOAD_PATH.match(path)
        if scope["type"] == "http" and upload and scope.get("method") in {"PUT", "DELETE"}:
            if not self.registry.session_accepts(upload["session_id"],
                                                 _cookies_from(scope["headers"]).get(COOKIE_NAME)):
                # refused before the body is read: nothing reaches server memory
                return await _plain_response(send, 403, b"sign in to upload")
        return await self.app(scope, receive, send)

    async def _stream(self, scope, receive, send):
        import anyio

        headers = list(scope["headers"])
        jar = _cookies_from(headers)
        token, browser = jar.get(COOKIE_NAME), _browser_key(jar)
        for i, (name, value) in enumerate(headers):
            if name.lower() != b"sec-websocket-protocol":
                continue
            entries = [v.strip() for v in value.decode("latin-1").split(",")]
            session_id = entries[2] if len(entries) >= 3 else ""
            if not session_id:
                continue
            if self.registry.is_bound(session_id):
                refused = not self.registry.session_accepts(session_id, token)
            else:
                # a signed-out session: only the browser that created it resumes it (it may be mid-sign-in,
                # and the run that checks the password hands its one-time code to whoever is connected)
                refused = not self.registry.creator_accepts(session_id, browser)
            if refused:
                # a fresh session instead (Streamlit starts one when no id is given); the session and its
                # browser are left alone
                owner = self.registry.owner_of(session_id)
                _LOG.warning("refused to resume a session from a client that does not hold its cookie")
                if owner is not None:
                    await anyio.to_thread.run_sync(_audit_refusal, owner.username,
                                                   "session resumed without its sign-in cookie (refused)")
                headers[i] = (name, ", ".join(entries[:2]).encode("latin-1"))
        scope = dict(scope, headers=headers)
        return await self.app(scope, self._filtered(receive, token), self._noting(send, browser))

    def _noting(self, send, browser: str | None):
        """``send`` of the websocket: notes which browser created the session (its first ``new_session``)."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        noted = browser is None

        async def send_noting(message):
            nonlocal noted
            if not noted and message.get("type") == "websocket.send" and message.get("bytes"):
                msg = ForwardMsg()
                try:
                    msg.ParseFromString(message["bytes"])
                except Exception:
                    msg = None
                if msg is not None and msg.WhichOneof("type") == "new_session":
                    self.registry.note_creator(msg.new_session.initialize.session_id, browser)
                    noted = True
            return await send(message)

        return send_noting

    def _filtered(self, receive, token: str | None):
        """``receive`` of the websocket, checked frame by frame against this connection's cookie."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        async def receive_filtered():
            while True:
                message = await receive()
                data = message.get("bytes") if message["type"] == "websocket.receive" else None
                if not data:
                    return message
                back_msg = BackMsg()
                try:
                    back_msg.ParseFromString(data)
                except Exception:
                    return message  # Streamlit closes the connection on an unreadable frame
                kind = back_msg.WhichOneof("type")
                who = self.registry.lookup(token)  # now, not at the handshake: a sign-out ends it
                if kind == "clear_cache" and (who is None or who.role != "admin"):
                    # every user's caches are server-wide: only a signed-in administrator clears them
                    _LOG.warning("dropped clear_cache from a client that is not an administrator")
                    continue
                if kind == "rerun_script" and back_msg.rerun_script.fragment_id and who is None:
                    # a fragment rerun does not run the sign-in gate: without a valid cookie it becomes a
                    # full run, so the gate decides (a tab whose sign-in ended elsewhere is signed out)
                    back_msg.rerun_script.fragment_id = ""
                    return dict(message, bytes=back_msg.SerializeToString())
                return message

        return receive_filtered


async def _plain_response(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
