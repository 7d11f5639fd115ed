"""Where the bytes of a study come from: a folder, a zip, a list of uploaded files, one file.

Every source is turned into a flat list of :class:`SourceFile` (a display name and either a path
on disk or the bytes in memory) before anything is parsed, so the DICOM reader has one input
shape. Zip members are inflated into a private scratch folder (mode 0700, files 0600, numbered
names: a member's own name is only ever a display name), never into memory, and the reader removes
that folder when it is done. A member name with ``..`` or an absolute path (path traversal), too
many members, a member inflating beyond :data:`ZIP_MAX_RATIO` times its compressed size, or more
inflated bytes than the upload's budget (:class:`InflateBudget`, :data:`ZIP_MAX_TOTAL_BYTES` for
all the zips of one upload together; the declared sizes are checked first and the bytes actually
inflated are counted while writing, since declared sizes can lie) make the zip unsafe, which
raises :class:`~nbrisk_core.errors.InputError` naming the member and the budget.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nbrisk_core.errors import InputError

#: limits on zips, generous for a CT study (a 3-phase 512 x 512 x 400 study is ~ 0.6 GB) and
#: small enough that a zip bomb cannot fill the disk: ZIP_MAX_TOTAL_BYTES is the budget of
#: inflated bytes for one upload (every zip in it together), ZIP_MAX_MEMBERS per zip
ZIP_MAX_MEMBERS: int = 20_000
ZIP_MAX_TOTAL_BYTES: int = 3 * 1024**3
#: DICOM compresses a few-fold with deflate; a member above this ratio is what zip bombs are made of
ZIP_MAX_RATIO: float = 200.0
_CHUNK = 1 << 20


def format_bytes(n_bytes: float) -> str:
    """``1.5 GiB``, ``3.0 MiB``, ``512 bytes``: sizes in messages, in binary units."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n_bytes) >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{int(n_bytes)} bytes"


class InflateBudget:
    """Bytes the zips of one upload may still inflate to (shared by every zip of the upload)."""

    def __init__(self, limit: int | None = None):
        self.limit = int(ZIP_MAX_TOTAL_BYTES if limit is None else limit)
        self.used = 0

    @property
    def left(self) -> int:
        return self.limit - self.used

    def describe(self) -> str:
        return (f"the upload's budget of {format_bytes(self.limit)} of unzipped content "
                f"({format_bytes(self.used)} already used)")


class Scratch:
    """A private folder (0700) for inflated zip members, created on first use; :meth:`close` removes it."""

    def __init__(self):
        self._path: Path | None = None

    def new_file(self) -> tuple[int, Path]:
        """An open descriptor and path of a new, empty, owner-only (0600) file with a meaningless name."""
        if self._path is None:
            from nbrisk_core.imaging.private_dirs import private_dir

            self._path = private_dir("zip")
        fd, name = tempfile.mkstemp(dir=self._path, prefix="m")  # mkstemp: O_EXCL, mode 0600
        return fd, Path(name)

    def close(self) -> None:
        if self._path is not None:
            import shutil

            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None


@dataclass
class SourceFile:
    """One input file: ``name`` for messages, and its ``path`` on disk or its ``data`` bytes.

    ``error`` is set (and there is no content) when the file could not even be read out of its
    container; the reader reports it as skipped.
    """

    name: str
    path: Path | None = None
    data: bytes | None = None
    error: str | None = None

    def open(self):
        """A binary file object positioned at the start (a path for files on disk)."""
        if self.path is not None:
            return str(self.path)
        return io.BytesIO(self.data)

    def head(self, n: int = 132) -> bytes:
        if self.data is not None:
            return self.data[:n]
        with open(self.path, "rb") as handle:
            return handle.read(n)

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size


def is_zip(head: bytes) -> bool:
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def _check_member_name(zip_name: str, member: str) -> None:
    posix = PurePosixPath(member.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or (len(member) > 1 and member[1] == ":"):
        raise InputError(f"{zip_name}: unsafe zip, member {member!r} points outside the archive "
                         "(path traversal); expected relative paths only", source=zip_name)


def read_zip(data_or_path, zip_name: str, max_members: int | None = None,
             max_total_bytes: int | None = None, max_ratio: float | None = None,
             scratch: Scratch | None = None, budget: InflateBudget | None = None) -> list[SourceFile]:
    """Inflate the members of a zip into ``scratch`` (on disk), refusing unsafe archives.

    Parameters
    ----------
    data_or_path : bytes or path-like
    zip_name : str
        Display name, used in messages and as the prefix of the members' display names.
    scratch : Scratch, optional
        Where members are written; without one they are kept in memory (small archives in tests).
    budget : InflateBudget, optional
        Shared by the zips of one upload; a fresh one of ``max_total_bytes`` by default.

    Raises
    ------
    InputError
        The file is not a readable zip, a member name escapes the archive, or the archive has more
        than ``max_members`` files, a member with a compression ratio above ``max_ratio``, or more
        inflated bytes (declared, or counted while inflating) than the budget has left.
    """
    max_members = ZIP_MAX_MEMBERS if max_members is None else max_members
    max_ratio = ZIP_MAX_RATIO if max_ratio is None else max_ratio
    budget = budget if budget is not None else InflateBudget(max_total_bytes)
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes | bytearray) else data_or_path
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"{zip_name}: not a readable zip archive ({error})", source=zip_name) from None
    files: list[SourceFile] = []
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        for info in archive.infolist():
            _check_member_name(zip_name, info.filename)
        if len(infos) > max_members:
            raise InputError(f"{zip_name}: unsafe zip, {len(infos)} files; at most {max_members} accepted",
                             source=zip_name)
        declared = sum(info.file_size for info in infos)
        if declared > budget.left:
            raise InputError(f"{zip_name}: unsafe zip, declares {format_bytes(declared)} uncompressed, "
                             f"beyond {budget.describe()} (zip bomb?)", source=zip_name)
        for info in infos:
            try:
                files.append(_inflate(archive, info, zip_name, max_ratio, scratch, budget))
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as error:
                # one damaged or encrypted member must not take the rest of the upload down
                files.append(SourceFile(f"{zip_name}/{info.filename}",
                                        error=f"cannot be read from the zip ({error})"))
    return files


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, zip_name: str, max_ratio: float,
             scratch: Scratch | None, budget: InflateBudget) -> SourceFile:
    """One member, counted chunk by chunk against its ratio limit and the upload's budget."""
    ratio_limit = max(int(info.compress_size * max_ratio), 1 << 16)
    name = f"{zip_name}/{info.filename}"
    chunks: list[bytes] = []
    path = handle = None
    if scratch is not None:
        fd, path = scratch.new_file()
        handle = os.fdopen(fd, "wb")
    size = 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                if size > ratio_limit:
                    raise InputError(f"{zip_name}: unsafe zip, member {info.filename!r} inflates beyond "
                                     f"{format_bytes(ratio_limit)}, more than {max_ratio:.0f} times its "
                                     f"{info.compress_size} compressed bytes (zip bomb?)", source=zip_name)
                if size > budget.left:
                    raise InputError(f"{zip_name}: unsafe zip, member {info.filename!r} inflates beyond "
                                     f"{budget.describe()} (zip bomb?)", source=zip_name)
                if handle is None:
                    chunks.append(chunk)
                else:
                    handle.write(chunk)
    except BaseException:
        if handle is not None:
            handle.close()
            path.unlink(missing_ok=True)
        raise
    if handle is not None:
        handle.close()
    budget.used += size
    return SourceFile(name, data=b"".join(chunks)) if path is None else SourceFile(name, path=path)


def collect_sources(source, scratch: Scratch | None = None,
                    budget: InflateBudget | None = None) -> list[SourceFile]:
    """Flatten a study source into files.

    Parameters
    ----------
    source : path-like, or iterable of ``(name, bytes)`` pairs, upload objects or SourceFile
        A folder (read recursively), a zip, a single file (DICOM, multi-frame DICOM, DICOMDIR or a
        2-D image), or uploaded files: ``(name, bytes)`` pairs, objects with ``.name`` and
        ``.getvalue()`` (Streamlit's ``UploadedFile``), or :class:`SourceFile` (a file on disk with
        a display name of its own). Zips among them are expanded.
    scratch : Scratch, optional
        Where zip members are inflated (the caller removes it); in memory without one.
    budget : InflateBudget, optional
        The inflated-bytes budget of this whole source (all its zips); a fresh one by default.
    """
    budget = budget if budget is not None else InflateBudget()
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if str(source) == "":
            raise InputError("empty path: give a folder, zip or file", source="")
        if not path.exists():
            raise InputError(f"{path}: no such file or folder", source=str(path))
        if path.is_dir():
            files: list[SourceFile] = []
            for p in sorted(path.rglob("*")):
                if not p.is_file() or p.name.startswith("."):
                    continue
                files.extend(_expand(SourceFile(str(p.relative_to(path)), path=p), scratch, budget))
            return files
        single = SourceFile(path.name, path=path)
        if is_zip(single.head(4)):
            return read_zip(str(path), path.name, scratch=scratch, budget=budget)
        return [single]
    if isinstance(source, bytes | bytearray):
        raise InputError("expected a path or a list of (name, bytes) uploads, got raw bytes without a name")
    files = []
    for item in _iter_uploads(source):
        files.extend(_expand(item, scratch, budget))
    return files


def _expand(item: SourceFile, scratch: Scratch | None, budget: InflateBudget) -> list[SourceFile]:
    """A file as itself, or a zip as its members; an unsafe zip is refused alone (the rest stays usable)."""
    if item.size < 4 or not is_zip(item.head(4)):
        return [item]
    try:
        return read_zip(item.data if item.data is not None else str(item.path), item.name,
                        scratch=scratch, budget=budget)
    except InputError as error:
        return [SourceFile(item.name, error=str(error))]


def _iter_uploads(uploads: Iterable) -> Iterable[SourceFile]:
    for item in uploads:
        if isinstance(item, SourceFile):
            yield item
        elif isinstance(item, tuple) and len(item) == 2:
            yield SourceFile(str(item[0]), data=bytes(item[1]))
        elif hasattr(item, "name") and hasattr(item, "getvalue"):
            yield SourceFile(str(item.name), data=bytes(item.getvalue()))
        else:
            raise InputError(f"upload {item!r}: expected a (name, bytes) pair or an uploaded file")
