"""Password policy: long enough, not common, not the user name, not one repeated character.

Follows NIST SP 800-63B section 5.1.1.2 (memorized secrets): a minimum length, no composition
rules, and a check against values known to be commonly used, expected or compromised. The
deny-list is ``data/common_passwords.txt`` (the 10,000 most common passwords of zxcvbn's
frequency list; its header cites the source). A password is refused when it, or its core with
leading and trailing digits and punctuation stripped (``Password123!`` -> ``password``), is on the
list, or is the user name (either way round, any case, with such decoration), or has fewer than
:data:`MIN_DISTINCT_CHARACTERS` different characters (``aaaaaaaaaa``, ten spaces, ``abababab...``).
The messages never echo the password.
"""

from __future__ import annotations

import string
from functools import lru_cache
from importlib import resources

from nbrisk_core.errors import InputError

MIN_PASSWORD_LENGTH = 10
MIN_DISTINCT_CHARACTERS = 4
DENY_LIST = "common_passwords.txt"
_DECORATION = string.digits + string.punctuation + string.whitespace


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The deny-list, lower case (comment lines skipped)."""
    text = resources.files("nbrisk_core.store").joinpath("data", DENY_LIST).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _core(password: str) -> str:
    return password.lower().strip(_DECORATION)


def problem(password: str, username: str | None = None) -> str | None:
    """Why ``password`` is refused for ``username`` (None when it is accepted)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        return f"password is too short (expected at least {MIN_PASSWORD_LENGTH} characters)"
    if not password.strip():
        return "password is only white space (expected letters, digits or symbols)"
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        return (f"password has fewer than {MIN_DISTINCT_CHARACTERS} different characters "
                "(expected a passphrase or a mix, not a repeated character or pattern)")
    lowered, core = password.lower(), _core(password)
    name = (username or "").strip().lower()
    if name and len(name) >= 2:
        variants = {name, name[::-1]}
        stripped = lowered.replace(" ", "")
        if core in variants or lowered in variants or stripped.strip(_DECORATION) in variants \
                or (len(core) >= len(name) and core == name * (len(core) // len(name))):
            return "password is the user name or a variant of it (expected something else)"
    deny = common_passwords()
    if lowered in deny or core in deny:
        return "password is one of the most common passwords (expected something less guessable)"
    return None


def validate_password(password: str, username: str | None = None) -> None:
    """Raise :class:`InputError` (field ``password``, value not echoed) when :func:`problem` says so."""
    why = problem(password, username)
    if why is not None:
        raise InputError(why, source="password")
