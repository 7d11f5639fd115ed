"""The private upload directory: owner-only, sanitised names, removed at session end."""

from __future__ import annotations

import gc
import stat

from nbrisk_core.imaging.upload import UploadDir


def test_private_sanitised_and_removed():
    folder = UploadDir()
    path = folder.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    saved = folder.save("../../etc/evil name.dcm", b"abc")
    assert saved.parent == path and saved.name == "evil_name.dcm" and saved.read_bytes() == b"abc"
    assert folder.save("../../etc/evil name.dcm", b"x").name == "evil_name_1.dcm"
    folder.clear()
    assert list(path.iterdir()) == []
    folder.save("a.dcm", b"1")
    del folder
    gc.collect()
    assert not path.exists()  # dropped with the session state


def test_close_is_idempotent():
    folder = UploadDir()
    folder.close()
    folder.close()
    assert folder.closed and not folder.path.exists()
