"""Private owner-only scratch directories for raw data, and the sweep of those a dead process left behind.

The lowest layer of the upload path: :mod:`.sources` inflates zip members into one, :mod:`.upload`
keeps a session's raw uploads in one (see there for the whole policy). Every directory is
``$TMPDIR/nbrisk-upload-<pid>-<label>-*``, mode 0700; :func:`sweep_stale_uploads` removes those whose
process is gone (or that are older than :data:`STALE_AFTER_S`).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

PREFIX = "nbrisk-upload-"
#: a directory older than this is removed by the sweep even if its process id is alive (reused ids)
STALE_AFTER_S: float = 24 * 3600
_OWNED = re.compile(rf"^{PREFIX}(\d+)-")
_swept = False


def private_dir(label: str = "") -> Path:
    """A new owner-only (0700) directory ``$TMPDIR/nbrisk-upload-<pid>-<label>-*`` for raw data."""
    sweep_stale_uploads_once()
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{label + '-' if label else ''}"))


def sweep_stale_uploads(tmpdir: str | os.PathLike | None = None, now: float | None = None) -> list[Path]:
    """Remove the upload directories that no live NBRisk process owns; returns those removed.

    A directory is this user's, named ``nbrisk-upload-<pid>-...``; it is stale when that process no
    longer exists, or when it is older than :data:`STALE_AFTER_S` (process ids are reused), or when
    it has no process id in its name (made by an older NBRisk) and is older than an hour.
    """
    root = Path(tmpdir or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    for path in root.glob(f"{PREFIX}*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        age = now - info.st_mtime
        match = _OWNED.match(path.name)
        if match:
            pid = int(match.group(1))
            stale = age > STALE_AFTER_S or (pid != os.getpid() and not _alive(pid))
        else:
            stale = age > 3600
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def sweep_stale_uploads_once() -> None:
    """:func:`sweep_stale_uploads`, the first time it is called in this process."""
    global _swept
    if not _swept:
        _swept = True
        sweep_stale_uploads()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
