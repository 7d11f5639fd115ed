"""Pull a study from the archive into the same reader and de-identification as an upload.

:func:`pull_study` retrieves the CT series of a study into a private folder (0700, files 0600 under
numbered names, as :mod:`nbrisk_core.imaging.upload` does), checks that every instance the archive
announced arrived, and :func:`load_pulled` reads them with :func:`~nbrisk_core.imaging.load_study`
(de-identified on the way in) and deletes them. If anything fails (unreachable, refused, no CT,
a transfer that broke off or came short) the folder is removed before the error is raised: nothing
half-imported is kept.

The link to the archive: a case keeps the archive's Study Instance UID only where the site allows
it (``keep_study_link``). Then the study is de-identified with a key derived from that UID
(:func:`link_deidentifier`), so that pushing results back can find the chosen slices' original
instances again from the UID alone; without the link the key is random and the case carries no
way back to the archive.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nbrisk_core.imaging.deid import Deidentifier
from nbrisk_core.pacs.errors import PacsError
from nbrisk_core.pacs.query import SeriesHit

#: what the progress callback is given: (instances done, instances expected, a short text)
Progress = Callable[[int, int, str], None]


def link_deidentifier(study_uid: str) -> Deidentifier:
    """The de-identification key of a study whose archive link is kept: derived from its Study UID."""
    return Deidentifier(salt=hashlib.sha256(b"nbrisk-pacs-link\0" + str(study_uid).encode()).digest()[:16])


@dataclass
class PulledStudy:
    """A study's retrieved instances in a private folder (gone after :meth:`discard` or
    :func:`load_pulled`)."""

    study_uid: str
    path: Path
    files: list[Path] = field(default_factory=list)
    series: list[SeriesHit] = field(default_factory=list)
    archive_name: str = ""
    keep_study_link: bool = False

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.files = []


def ct_series(archive, study_uid: str) -> list[SeriesHit]:
    """The CT series of a study; :class:`PacsError` ``no_ct`` when it has none."""
    series = archive.list_series(study_uid)
    ct = [s for s in series if s.modality.upper() == "CT"]
    if not ct:
        modalities = ", ".join(sorted({s.modality or "?" for s in series}))
        raise PacsError(
            f"study {study_uid} has no CT series (it holds {modalities}); NBRisk reads the CT "
            "phases of a study",
            kind="no_ct",
        )
    return ct


def pull_study(
    archive,
    study_uid: str,
    *,
    series_uids: list[str] | None = None,
    progress: Progress | None = None,
    workdir: str | os.PathLike | None = None,
) -> PulledStudy:
    """Retrieve the CT series (or the chosen ones) of ``study_uid`` into a private folder.

    Raises
    ------
    PacsError
        The archive cannot be reached or refuses, the study is not there or has no CT, or fewer
        instances arrived than it announced (partial transfer). The folder is gone by then.
    """
    from nbrisk_core.imaging.upload import private_dir

    study_uid = str(study_uid or "").strip()
    if not study_uid:
        raise PacsError("no Study Instance UID given; expected one from 'nbrisk pacs find'", kind="input")
    series = ct_series(archive, study_uid)
    if series_uids:
        wanted = set(series_uids)
        unknown = wanted - {s.series_uid for s in series}
        if unknown:
            raise PacsError(
                f"series {', '.join(sorted(unknown))} is not a CT series of study {study_uid}",
                kind="not_found",
            )
        series = [s for s in series if s.series_uid in wanted]
    if workdir is None:
        path = private_dir("pacs")
    else:
        path = Path(workdir)
        path.mkdir(mode=0o700, parents=True, exist_ok=False)
    pulled = PulledStudy(
        study_uid,
        path,
        series=series,
        archive_name=archive.settings.name,
        keep_study_link=archive.settings.keep_study_link,
    )
    expected = sum(s.n_instances or 0 for s in series)
    try:
        for s in series:
            received = 0
            for ds in archive.iter_series(study_uid, s.series_uid):
                target = path / f"{len(pulled.files) + 1:05d}.dcm"
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    ds.save_as(handle, enforce_file_format=_has_meta(ds))
                pulled.files.append(target)
                received += 1
                if progress is not None:
                    progress(
                        len(pulled.files),
                        max(expected, len(pulled.files)),
                        f"series {s.number or '?'} ({s.description or s.modality})",
                    )
            if s.n_instances is not None and received < s.n_instances:
                raise PacsError(
                    f"study {study_uid}: series {s.number or s.series_uid} came short, "
                    f"{received} of the {s.n_instances} instances the archive announced "
                    "(partial transfer); nothing was kept, try again",
                    kind="partial",
                )
    except BaseException:
        pulled.discard()
        raise
    return pulled


def _has_meta(ds) -> bool:
    return bool(getattr(ds, "file_meta", None)) and "TransferSyntaxUID" in ds.file_meta


def load_pulled(pulled: PulledStudy, deidentifier: Deidentifier | None = None):
    """Read a pulled study like an upload (de-identified) and delete its files; returns the Study.

    With the study link kept, ``study.meta["archive"]`` holds it (:func:`archive_link`), and the
    case summary of :func:`nbrisk_core.imaging.case.case_meta` carries it into the saved case.

    The de-identification key is :func:`link_deidentifier` when the archive keeps the study link,
    else a random one.
    """
    from nbrisk_core.imaging.dicom_io import load_study
    from nbrisk_core.imaging.sources import SourceFile

    if deidentifier is None:
        deidentifier = link_deidentifier(pulled.study_uid) if pulled.keep_study_link else Deidentifier()
    try:
        sources = [SourceFile(f"instance {i + 1}", path=p) for i, p in enumerate(pulled.files)]
        study = load_study(sources, deidentifier)
    finally:
        pulled.discard()
    link = archive_link(pulled)
    if link is not None:
        study.meta["archive"] = link  # carried into the case summary by imaging.case.case_meta
    if not study.series:
        raise PacsError(
            f"study {pulled.study_uid}: none of the retrieved instances could be read "
            f"({'; '.join(s.reason for s in study.skipped[:3]) or 'no files'})",
            kind="no_ct",
        )
    return study


def archive_link(pulled: PulledStudy) -> dict | None:
    """What a case keeps of the archive: its name and the Study Instance UID, only where allowed."""
    if not pulled.keep_study_link:
        return None
    return {"archive": pulled.archive_name, "study_uid": pulled.study_uid}


def export_deidentified(pulled: PulledStudy, out_dir: str | os.PathLike) -> list[Path]:
    """Write the pulled instances de-identified (PS3.15 basic profile) under a new folder ``out_dir``.

    The files are written into a private folder beside ``out_dir`` and renamed into place at the
    end, so ``out_dir`` either holds the whole study or does not exist. The pulled raw files are
    deleted in any case.

    Raises
    ------
    PacsError
        ``out_dir`` exists and is not an empty folder.
    """
    import tempfile

    import pydicom

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        pulled.discard()
        raise PacsError(
            f"{out}: already exists and is not an empty folder; expected a new folder for the study",
            kind="input",
        )
    deid = link_deidentifier(pulled.study_uid) if pulled.keep_study_link else Deidentifier()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    written = []
    try:
        for i, path in enumerate(pulled.files):
            ds = deid.deidentify_dataset(pydicom.dcmread(path))
            target = staging / f"IM{i + 1:05d}.dcm"
            ds.save_as(target, enforce_file_format=_has_meta(ds))
            written.append(out / target.name)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        pulled.discard()
    return written


__all__ = [
    "PulledStudy",
    "archive_link",
    "ct_series",
    "export_deidentified",
    "link_deidentifier",
    "load_pulled",
    "pull_study",
]
