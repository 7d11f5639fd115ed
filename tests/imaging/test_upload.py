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
    # numbered on disk, owner-only; the original name is only a display name (in memory)
    assert saved.parent == path and saved.name == "0001.upload" and saved.read_bytes() == b"abc"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert folder.display_names[saved] == "evil name.dcm"
    assert folder.save("../../etc/evil name.dcm", b"x").name == "0002.upload"
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
