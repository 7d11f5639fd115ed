"""Where the bytes of a study come from: a folder, a zip, a list of uploaded files, one file.

Every source is turned into a flat list of :class:`SourceFile` (a display name and either a path
on disk or the bytes in memory) before anything is parsed, so the DICOM reader has one input
shape. Zips are read into memory, never extracted: a member name with ``..`` or an absolute path
(path traversal), too many members or too many uncompressed bytes (zip bomb) make the whole zip
unsafe, which raises :class:`~nbrisk_core.errors.InputError`.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nbrisk_core.errors import InputError

#: limits on a zip, generous for a CT study (a 3-phase 512 x 512 x 400 study is ~ 0.6 GB) and
#: small enough that a zip bomb cannot exhaust memory
ZIP_MAX_MEMBERS: int = 20_000
ZIP_MAX_TOTAL_BYTES: int = 3 * 1024**3
#: DICOM compresses a few-fold with deflate; a member above this ratio is what zip bombs are made of
ZIP_MAX_RATIO: float = 200.0
_CHUNK = 1 << 20


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


def read_zip(data_or_path, zip_name: str, max_members: int = ZIP_MAX_MEMBERS,
             max_total_bytes: int = ZIP_MAX_TOTAL_BYTES, max_ratio: float = ZIP_MAX_RATIO) -> list[SourceFile]:
    """Read the members of a zip into memory, refusing unsafe archives.

    The declared sizes in a zip's directory can lie, so the bytes actually inflated are counted
    while reading and the read stops as soon as a limit is passed.

    Raises
    ------
    InputError
        The file is not a readable zip, a member name escapes the archive, or the archive has more
        than ``max_members`` files, more than ``max_total_bytes`` uncompressed, or a member with a
        compression ratio above ``max_ratio``.
    """
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
        if declared > max_total_bytes:
            raise InputError(f"{zip_name}: unsafe zip, {declared / 1e9:.1f} GB uncompressed; at most "
                             f"{max_total_bytes / 1e9:.1f} GB accepted (zip bomb?)", source=zip_name)
        total = 0
        for info in infos:
            limit = min(max_total_bytes - total, max(int(info.compress_size * max_ratio), 1 << 16))
            chunks, size = [], 0
            try:
                with archive.open(info) as member:
                    while chunk := member.read(_CHUNK):
                        size += len(chunk)
                        if size > limit:
                            raise InputError(
                                f"{zip_name}: unsafe zip, member {info.filename!r} inflates beyond "
                                f"{limit / 1e6:.1f} MB (ratio above {max_ratio:.0f}:1 or total above "
                                f"{max_total_bytes / 1e9:.1f} GB; zip bomb?)", source=zip_name)
                        chunks.append(chunk)
            except InputError:
                raise
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as error:
                # one damaged or encrypted member must not take the rest of the upload down
                files.append(SourceFile(f"{zip_name}/{info.filename}",
                                        error=f"cannot be read from the zip ({error})"))
                continue
            total += size
            files.append(SourceFile(f"{zip_name}/{info.filename}", data=b"".join(chunks)))
    return files


def collect_sources(source) -> list[SourceFile]:
    """Flatten a study source into files.

    Parameters
    ----------
    source : path-like, or iterable of ``(name, bytes)`` pairs or upload objects
        A folder (read recursively), a zip, a single file (DICOM, multi-frame DICOM, DICOMDIR or a
        2-D image), or uploaded files: ``(name, bytes)`` pairs or objects with ``.name`` and
        ``.getvalue()`` (Streamlit's ``UploadedFile``). Zips among the uploads are expanded.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder", source=str(path))
        if path.is_dir():
            files: list[SourceFile] = []
            for p in sorted(path.rglob("*")):
                if not p.is_file() or p.name.startswith("."):
                    continue
                member = SourceFile(str(p.relative_to(path)), path=p)
                if p.stat().st_size >= 4 and is_zip(member.head(4)):
                    # a zip inside a folder (e.g. an upload directory) is expanded like an uploaded zip
                    try:
                        files.extend(read_zip(str(p), member.name))
                    except InputError as error:
                        files.append(SourceFile(member.name, error=str(error)))
                else:
                    files.append(member)
            return files
        single = SourceFile(path.name, path=path)
        if is_zip(single.head(4)):
            return read_zip(str(path), path.name)
        return [single]
    if isinstance(source, bytes | bytearray):
        raise InputError("expected a path or a list of (name, bytes) uploads, got raw bytes without a name")
    files = []
    for item in _iter_uploads(source):
        name, data = item
        if is_zip(data[:4]):
            try:
                files.extend(read_zip(data, name))
            except InputError as error:
                # an unsafe zip among several uploads is refused alone; the other files stay usable
                files.append(SourceFile(name, error=str(error)))
        else:
            files.append(SourceFile(name, data=data))
    return files


def _iter_uploads(uploads: Iterable) -> Iterable[tuple[str, bytes]]:
    for item in uploads:
        if isinstance(item, tuple) and len(item) == 2:
            yield str(item[0]), bytes(item[1])
        elif hasattr(item, "name") and hasattr(item, "getvalue"):
            yield str(item.name), bytes(item.getvalue())
        else:
            raise InputError(f"upload {item!r}: expected a (name, bytes) pair or an uploaded file")
