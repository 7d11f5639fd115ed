"""Sign-in gate for the dashboard (placeholder until the Workflow issue lands)."""

from __future__ import annotations

import os

import streamlit as st


def auth_required(server_address: str | None = None) -> bool:
    """``NBRISK_AUTH=on|off``; default on whenever the server is not bound to localhost."""
    env = os.environ.get("NBRISK_AUTH", "").strip().lower()
    if env in {"on", "off"}:
        return env == "on"
    address = server_address or st.get_option("server.address") or ""
    return address not in {"127.0.0.1", "localhost", "::1"}


def gate():
    """Return the signed-in user, or None when sign-in is off; stop the page when it is required."""
    if not auth_required():
        return None
    st.error("Sign-in is required on this server, and user management is not set up yet.")
    st.stop()
