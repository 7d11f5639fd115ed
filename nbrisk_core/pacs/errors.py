"""The one error an archive gives: :class:`PacsError`, an :class:`~nbrisk_core.errors.InputError`.

So the CLI prints it on one line (exit 2) and the dashboard shows it with ``st.error``. Messages name
the archive by its URL without credentials, what was asked (a study's UID, a search) and what to
check; never a patient identifier, a password or a token.
"""

from __future__ import annotations

from nbrisk_core.errors import InputError


class PacsError(InputError):
    """The archive could not be reached, refused us, or did not have or send what was asked."""

    def __init__(self, message: str, *, kind: str = "error", status: int | None = None):
        super().__init__(message, source="archive")
        #: ``unreachable``, ``auth``, ``not_found``, ``no_ct``, ``partial``, ``tls``, ``http``, ``no_link``
        self.kind = kind
        self.status = status


__all__ = ["PacsError"]
