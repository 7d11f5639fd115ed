"""The one error type for everything a user (or an uploaded file) can get wrong.

Tracebacks are for bugs only: every problem with user input raises :class:`InputError`,
whose message names the file or field, the value, and what was expected. The dashboard
shows it with ``st.error``; the CLI prints it on one line and exits with status 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a file, a field or an argument that NBRisk cannot accept.

    Parameters
    ----------
    message : str
        What is wrong, naming the file or field, the value and what was expected.
    source : str, optional
        The file name or field name the problem is about (kept for UIs that list problems).

    Examples
    --------
    >>> raise InputError("labs.csv: nse = -3 ng/mL is outside the accepted range 0-2000 ng/mL")
    Traceback (most recent call last):
    ...
    nbrisk_core.errors.InputError: labs.csv: nse = -3 ng/mL is outside the accepted range 0-2000 ng/mL
    """

    def __init__(self, message: str, source: str | None = None):
        super().__init__(message)
        self.source = source
