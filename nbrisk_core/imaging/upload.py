"""Raw uploads on disk: private, under meaningless names, and gone as soon as the study is read.

An upload carries the original headers (names, IDs, dates) and the original file names (which may
hold a patient's name). So that none of it outlives its use:

* each session gets a directory made by :func:`private_dir` (``$TMPDIR/nbrisk-upload-<pid>-*``,
  mode 0700); files in it are created owner-only (0600) with numbered names (``0001.upload``);
  the original name is kept in memory only, as the display name the reader reports;
* :meth:`UploadDir.read_study` reads the files with the path-based reader (pixel data read from
  disk, not held twice) and deletes them before it returns, whatever happens, so the raw files
  exist only while one study is being read; zip members are inflated into another private
  directory that the reader removes itself (:mod:`.sources`);
* :func:`sweep_stale_uploads` removes what a crashed or killed server left behind: every
  ``nbrisk-upload-*`` directory of this user whose server process is gone (or that is older
  than :data:`STALE_AFTER_S`). It runs once per process, before this process writes its first
  upload, and at the dashboard's start.

The directory itself (empty between reads) is removed by :meth:`UploadDir.close`, when the owning
object is garbage-collected (Streamlit drops a session's state when the session ends) and at
interpreter exit; since the files are deleted right after reading, nothing raw waits for that.
"""

from __future__ import annotations

import os
import re
import shutil
import weakref
from pathlib import Path

# the private directories and their sweep live one layer down (zip inflation in .sources uses them too)
from nbrisk_core.imaging.private_dirs import (PREFIX, STALE_AFTER_S, private_dir, sweep_stale_uploads,
                                              sweep_stale_uploads_once)

_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class UploadDir:
    """Owns one private temporary directory; ``save`` writes an upload, ``read_study`` reads and deletes."""

    def __init__(self):
        self.path = private_dir("session")
        self._names: dict[Path, str] = {}
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def save(self, name: str, data) -> Path:
        """Write ``data`` (bytes or a binary file object) as the next numbered file; returns its path.

        ``name`` is remembered (in memory, sanitised to its last path component) as the display
        name of the file; it is never used on disk.
        """
        target = self.path / f"{len(self._names) + 1:04d}.upload"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes | bytearray | memoryview):
                handle.write(data)
            else:
                if hasattr(data, "seek"):
                    data.seek(0)
                shutil.copyfileobj(data, handle, 1 << 20)
        self._names[target] = display_name(name)
        return target

    @property
    def display_names(self) -> dict[Path, str]:
        return dict(self._names)

    def read_study(self, deidentifier=None):
        """Read the saved uploads as one study (:func:`~.dicom_io.load_study`), then delete them.

        Files are reported under their display names. The raw files are deleted before this
        returns or raises, so they exist only while the study is being read.
        """
        from nbrisk_core.imaging.dicom_io import load_study
        from nbrisk_core.imaging.sources import SourceFile

        try:
            sources = [SourceFile(name, path=path) for path, name in self._names.items()]
            return load_study(sources, deidentifier)
        finally:
            self.clear()

    def clear(self) -> None:
        """Remove every file (a new case replaces the previous one)."""
        self._names.clear()
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


def display_name(name: str) -> str:
    """The last path component of an upload's name, without control or path characters."""
    base = _SAFE.sub("_", Path(str(name).replace("\\", "/")).name).strip().lstrip(".")
    return base[:120] or "upload"


__all__ = ["PREFIX", "STALE_AFTER_S", "UploadDir", "display_name", "private_dir", "sweep_stale_uploads",
           "sweep_stale_uploads_once"]
