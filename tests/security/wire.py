"""The attacker's tools: Streamlit's websocket protocol and upload endpoint without a browser.

Streamlit's frontend opens ``/_stcore/stream`` with ``Sec-WebSocket-Protocol: streamlit, <XSRF token>[,
<session id to resume>]`` and then exchanges protobufs: ``BackMsg`` out (``rerun_script``,
``clear_cache``...), ``ForwardMsg`` in (``new_session`` carries the session id, ``delta`` the elements,
``script_finished`` ends a run). Uploads are ``PUT /_stcore/upload_file/<session id>/<file id>`` with the
XSRF header. A raw client can do all of it; these helpers are what the red-team tests replay.
"""

from __future__ import annotations

import http.client
import re
import time
import urllib.parse
import urllib.request


def own_xsrf_cookie(base_url: str) -> str:
    """The XSRF cookie any client gets from the health check the frontend pings (double submit: the header
    repeats the cookie, so it proves only that the request is not cross-site)."""
    with urllib.request.urlopen(base_url + "/_stcore/health", timeout=30) as response:
        cookies = response.headers.get_all("Set-Cookie") or []
    for cookie in cookies:
        match = re.match(r"_streamlit_xsrf=([^;]+)", cookie)
        if match:
            return match.group(1)
    raise AssertionError(f"no _streamlit_xsrf cookie from {base_url}/: {cookies}")


class RawClient:
    """Streamlit's websocket protocol without a browser (a context manager: the connection)."""

    def __init__(self, base_url: str, *, session_id: str | None = None, cookies: dict | None = None,
                 xsrf: str | None = None):
        from websockets.sync.client import connect

        self.xsrf = xsrf or own_xsrf_cookie(base_url)
        jar = {"_streamlit_xsrf": self.xsrf, **(cookies or {})}
        # the frontend's order: subprotocol, XSRF token, the session id to resume
        protocols = ["streamlit", self.xsrf] + ([session_id] if session_id else [])
        self._connect = connect(base_url.replace("http://", "ws://", 1) + "/_stcore/stream",
                                subprotocols=protocols, max_size=None, open_timeout=30,
                                additional_headers={"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
                                                    "Origin": base_url})
        self.payloads: list[bytes] = []
        self.session_id: str | None = None

    def __enter__(self):
        self.ws = self._connect.__enter__()
        return self

    def __exit__(self, *exc):
        return self._connect.__exit__(*exc)

    def send(self, back_msg) -> None:
        self.ws.send(back_msg.SerializeToString())

    def rerun(self, client_state=None) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        if client_state is not None:
            msg.rerun_script.CopyFrom(client_state)
        else:
            msg.rerun_script.SetInParent()
        # a fresh client has nothing cached: every element comes in full, nothing as a reference
        del msg.rerun_script.cached_message_hashes[:]
        self.send(msg)

    def read_until(self, kind: str = "script_finished", timeout: float = 60.0) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        deadline = time.monotonic() + timeout
        while True:
            data = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            self.payloads.append(data)
            msg = ForwardMsg()
            msg.ParseFromString(data)
            if msg.WhichOneof("type") == "new_session":
                self.session_id = msg.new_session.initialize.session_id
            if msg.WhichOneof("type") == kind:
                return

    def saw(self, needle: bytes) -> bool:
        return any(needle in payload for payload in self.payloads)


def put_upload(base_url: str, session_id: str, data: bytes, *, xsrf: str, cookies: dict | None = None):
    """``PUT /_stcore/upload_file/<session id>/<file id>`` as the frontend sends it; the status, or None
    when the server closed the connection before the whole body was sent."""
    boundary = "nbriskredteam"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    jar = {"_streamlit_xsrf": xsrf, **(cookies or {})}
    parsed = urllib.parse.urlparse(base_url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        connection.request("PUT", f"/_stcore/upload_file/{session_id}/redteam-file", body=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Xsrftoken": xsrf,
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())})
        return connection.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        return None
    finally:
        connection.close()
