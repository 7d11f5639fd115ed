"""A private temporary directory for one session's uploads, removed when the session ends.

Uploaded files are written under a directory created with :func:`tempfile.mkdtemp` (mode 0700, so
other local users cannot read it) and read back with the path-based reader (pixel data is then read
lazily from disk, not held in the session's memory). The directory is removed by :meth:`close`,
when the owning object is garbage-collected (Streamlit drops a session's state when the session
ends) and at interpreter exit, whichever comes first. Names are sanitised: an upload can never
write outside its directory.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import weakref
from pathlib import Path

from nbrisk_core.errors import InputError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadDir:
    """Owns one private temporary directory; ``save(name, data)`` writes an upload into it."""

    def __init__(self, prefix: str = "nbrisk-upload-"):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def save(self, name: str, data: bytes) -> Path:
        """Write ``data`` under a sanitised version of ``name``; returns the file's path."""
        base = _SAFE.sub("_", Path(str(name).replace("\\", "/")).name).lstrip(".") or "upload"
        target = (self.path / base).resolve()
        if target.parent != self.path.resolve():
            raise InputError(f"upload name {name!r} is not a plain file name")
        stem, suffix, n = target.stem, target.suffix, 1
        while target.exists():
            target = self.path / f"{stem}_{n}{suffix}"
            n += 1
        target.write_bytes(data)
        target.chmod(0o600)
        return target

    def clear(self) -> None:
        """Remove every file (a new case replaces the previous one)."""
        for child in self.path.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

    def close(self) -> None:
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive
