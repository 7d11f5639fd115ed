"""Issue 18, finding 9 (in part): the password policy, and the store's files made private (0600/0700)."""

from __future__ import annotations

import os
import stat

import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.store import passwords, users

PASSWORD = "correct horse battery"


@pytest.mark.parametrize("password, message", [
    ("aaaaaaaaaa", "fewer than 4 different characters"),
    (" " * 10, "only white space"),
    ("abababababab", "fewer than 4 different characters"),
    ("sh0rt", "too short"),
    ("1234567890", "most common passwords"),
    ("Password123!", "most common passwords"),
    ("qwertyuiop", "most common passwords"),
    ("!!Baseball2024", "most common passwords"),
    ("alice.smith", "user name or a variant"),
    ("ALICE.SMITH2024!", "user name or a variant"),
    ("htims.ecila", "user name or a variant"),
    ("alice.smithalice.smith", "user name or a variant"),
])
def test_weak_passwords_are_refused_without_echoing_them(password, message):
    with pytest.raises(InputError, match=message) as caught:
        users.validate_password(password, "alice.smith")
    assert password.strip() == "" or password not in str(caught.value)
    assert caught.value.source == "password"


@pytest.mark.parametrize("password", [PASSWORD, "alice likes long walks", "Tr0ub4dor&3-horse",
                                      "x7#Qm-2pL!9z"])
def test_good_passwords_pass(password):
    assert passwords.problem(password, "alice.smith") is None


def test_the_deny_list_ships_with_the_package():
    deny = passwords.common_passwords()
    assert len(deny) >= 9000 and {"password", "123456", "qwerty", "iloveyou"} <= deny
    assert not any(p.startswith("#") for p in deny)


def test_add_user_and_passwd_apply_the_policy(engine):
    with pytest.raises(InputError, match="user name or a variant"):
        users.add_user(engine, "gabriel", "Gabriel2026!")
    users.add_user(engine, "gabriel", PASSWORD)
    with pytest.raises(InputError, match="most common"):
        users.set_password(engine, "gabriel", "iloveyou12345")
    with pytest.raises(InputError, match="fewer than 4 different"):
        users.set_password(engine, "gabriel", "          x")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_sqlite_store_is_private(tmp_path):
    from nbrisk_core.store import audit
    from nbrisk_core.store.db import make_engine, migrate

    old_umask = os.umask(0o022)  # the usual default: world-readable unless the store says otherwise
    try:
        folder = tmp_path / "data" / "store"
        engine = make_engine(f"sqlite:///{folder / 'nbrisk.db'}")
        migrate(engine)
        audit.record(engine, "alice", "sign_in")
        with engine.connect():  # WAL mode: the -wal and -shm files exist while a connection is open
            made = sorted(p.name for p in folder.iterdir())
            assert made == ["nbrisk.db", "nbrisk.db-shm", "nbrisk.db-wal"]
            assert {name: _mode(folder / name) for name in made} == {name: 0o600 for name in made}
        assert _mode(folder) == 0o700
        engine.dispose()
        # a database made earlier with looser permissions is tightened when the store opens it
        os.chmod(folder / "nbrisk.db", 0o644)
        make_engine(f"sqlite:///{folder / 'nbrisk.db'}").dispose()
        assert _mode(folder / "nbrisk.db") == 0o600
    finally:
        os.umask(old_umask)
