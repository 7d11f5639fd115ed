"""What the dashboard's process shares, below every other ``nbrisk_ui`` module: the sign-in setting and
the case-store engine.

:mod:`nbrisk_ui.websession`, :mod:`nbrisk_ui.auth` and :mod:`nbrisk_ui.cases` import these from here, so
that the three do not import one another in a circle (cases -> auth -> websession -> resources).
"""

from __future__ import annotations

import os

import streamlit as st

from nbrisk_core import config


def auth_required() -> bool:
    """Sign-in is required unless ``NBRISK_AUTH=off`` is set explicitly.

    Any other value, empty or misspelt included, keeps it on: a mistake fails closed.
    """
    return os.environ.get("NBRISK_AUTH", "").strip().lower() != "off"


@st.cache_resource(show_spinner=False)
def _engine_for(url: str):
    from nbrisk_core.store import get_engine

    return get_engine(url)


def store_engine():
    """The process-wide case-store engine (migrated on first use), shared by all sessions."""
    return _engine_for(config.database_url())
