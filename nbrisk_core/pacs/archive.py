"""Talk to an archive: search (QIDO-RS / C-FIND), retrieve (WADO-RS / C-GET), store (STOW-RS).

:func:`open_archive` gives a :class:`DicomWebArchive` (dicomweb-client over a ``requests`` session
with the site's auth and TLS settings) when the settings have a URL, else a
:class:`~nbrisk_core.pacs.dimse.DimseArchive` (pynetdicom). Both offer the same methods; every
failure becomes a :class:`~nbrisk_core.pacs.errors.PacsError` naming the archive (URL without
credentials), what was asked and what to check. The search keys and hits of both routes are in
:mod:`nbrisk_core.pacs.query`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pydicom.dataset import Dataset

from nbrisk_core.pacs.errors import PacsError
from nbrisk_core.pacs.query import (
    SERIES_FIELDS,
    STUDY_FIELDS,
    SeriesHit,
    StudyHit,
    series_hit,
    study_filters,
    study_hit,
)
from nbrisk_core.pacs.settings import ArchiveSettings

# dicomweb-client logs request URLs at DEBUG, query strings (a patient ID) included: never identifiers in logs
logging.getLogger("dicomweb_client").setLevel(logging.WARNING)


class DicomWebArchive:
    """An archive reached over DICOMweb (QIDO-RS, WADO-RS, STOW-RS) with dicomweb-client."""

    def __init__(self, settings: ArchiveSettings):
        import requests
        from dicomweb_client.api import DICOMwebClient

        self.settings = settings
        session = requests.Session()
        if settings.auth == "basic" and settings.username is not None:
            session.auth = (settings.username, settings.password or "")
        elif settings.auth == "bearer" and settings.token:
            session.headers["Authorization"] = f"Bearer {settings.token}"
        session.verify = settings.ca_bundle or settings.verify_tls
        self._session = session
        self.client = DICOMwebClient(url=settings.url, session=session, timeout=settings.timeout_s)
        # an error answer is reported at once (no minutes of retries in the page)
        self.client.set_http_retry_params(retry=False)

    @property
    def where(self) -> str:
        return self.settings.display_url()

    @contextmanager
    def _calling(self, what: str, not_found: str | None = None):
        """Turn the transport's errors into one :class:`PacsError` about ``what``."""
        import requests

        try:
            yield
        except PacsError:
            raise
        except requests.exceptions.SSLError as error:
            raise PacsError(
                f"archive {self.where}: the TLS certificate could not be verified while trying to "
                f"{what} ({_first_line(error)}); set NBRISK_DICOMWEB_CA_BUNDLE to the site's CA file",
                kind="tls",
            ) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as error:
            raise PacsError(
                f"archive {self.where}: the transfer broke off while trying to {what} "
                f"(partial transfer: {_first_line(error)}); nothing was kept, try again",
                kind="partial",
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            raise PacsError(
                f"archive {self.where} cannot be reached while trying to {what} "
                f"({_reason(error)}); check the URL and that the archive is running",
                kind="unreachable",
            ) from None
        except requests.exceptions.HTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if status in (401, 403):
                raise PacsError(
                    f"archive {self.where} refused our credentials (HTTP {status}) while trying to "
                    f"{what}; check NBRISK_DICOMWEB_USER / NBRISK_DICOMWEB_PASSWORD or "
                    "NBRISK_DICOMWEB_TOKEN (or the archive's entry in the PACS settings file)",
                    kind="auth",
                    status=status,
                ) from None
            if status == 404:
                raise PacsError(
                    f"archive {self.where}: {not_found or 'not found'} (HTTP 404 while trying to {what})",
                    kind="not_found",
                    status=status,
                ) from None
            raise PacsError(
                f"archive {self.where} answered HTTP {status} while trying to {what}",
                kind="http",
                status=status,
            ) from None
        except (ValueError, KeyError) as error:
            raise PacsError(
                f"archive {self.where}: a malformed answer while trying to {what} ({_first_line(error)})",
                kind="http",
            ) from None

    # -- search ---------------------------------------------------------------------------------
    def find_studies(
        self,
        patient_id: str | None = None,
        accession: str | None = None,
        study_date: str | None = None,
        modality: str | None = "CT",
        limit: int = 200,
    ) -> list[StudyHit]:
        """Studies matching all given keys (QIDO-RS); with ``modality`` only those that hold one."""
        filters = study_filters(patient_id, accession, study_date, modality)
        with self._calling("search for studies"):
            found = self.client.search_for_studies(
                search_filters=filters, fields=list(STUDY_FIELDS), limit=limit
            )
        hits = [study_hit(Dataset.from_json(item)) for item in found]
        if modality:  # an archive that ignores ModalitiesInStudy as a key still reports it
            hits = [h for h in hits if not h.modalities or modality.upper() in h.modalities]
        return hits

    def list_series(self, study_uid: str) -> list[SeriesHit]:
        """The series of a study (QIDO-RS); :class:`PacsError` ``not_found`` when it has none."""
        with self._calling(
            f"list the series of study {study_uid}", f"study {study_uid} is not in the archive"
        ):
            found = self.client.search_for_series(study_instance_uid=study_uid, fields=list(SERIES_FIELDS))
        if not found:
            raise PacsError(
                f"archive {self.where}: study {study_uid} is not in the archive (no series found)",
                kind="not_found",
                status=404,
            )
        return sorted(
            (series_hit(Dataset.from_json(item)) for item in found),
            key=lambda s: (s.number is None, s.number or 0, s.series_uid),
        )

    def study_attributes(self, study_uid: str) -> Dataset:
        """The patient and study attributes of a study (in memory only: used to file results into it)."""
        fields = [
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientSex",
            "StudyDate",
            "StudyTime",
            "AccessionNumber",
            "StudyID",
            "ReferringPhysicianName",
            "StudyDescription",
        ]
        with self._calling(f"read study {study_uid}", f"study {study_uid} is not in the archive"):
            found = self.client.search_for_studies(
                search_filters={"StudyInstanceUID": study_uid}, fields=fields
            )
        if not found:
            raise PacsError(
                f"archive {self.where}: study {study_uid} is not in the archive", kind="not_found", status=404
            )
        return Dataset.from_json(found[0])

    # -- retrieve -------------------------------------------------------------------------------
    def iter_series(self, study_uid: str, series_uid: str) -> Iterator[Dataset]:
        """The instances of one series (WADO-RS), as they arrive."""
        what = f"retrieve series {series_uid} of study {study_uid}"
        with self._calling(what, f"series {series_uid} of study {study_uid} is not in the archive"):
            iterator = self.client.iter_series(study_uid, series_uid)
            while True:
                try:
                    ds = next(iterator)
                except StopIteration:
                    return
                yield ds

    def series_metadata(self, study_uid: str, series_uid: str) -> list[Dataset]:
        """Every instance's attributes without pixel data (WADO-RS metadata)."""
        with self._calling(
            f"read the metadata of series {series_uid}",
            f"series {series_uid} of study {study_uid} is not in the archive",
        ):
            items = self.client.retrieve_series_metadata(study_uid, series_uid)
        # bulk data (pixels) come as URIs to fetch later: not needed, and not fetched
        return [
            Dataset.from_json(
                {
                    tag: value
                    for tag, value in item.items()
                    if not (isinstance(value, dict) and "BulkDataURI" in value)
                }
            )
            for item in items
        ]

    # -- store ----------------------------------------------------------------------------------
    def store(self, datasets: Sequence[Dataset], study_uid: str) -> list[str]:
        """STOW-RS into ``study_uid``; returns the SOP Instance UIDs the archive confirmed."""
        for ds in datasets:
            # dicomweb-client writes each part with pydicom's dcmwrite as given: with a preamble and
            # file meta it is a DICOM file (PS3.10), which is what STOW-RS parts must be
            if getattr(ds, "preamble", None) is None:
                ds.preamble = b"\0" * 128
        with self._calling(
            f"store {len(datasets)} instance(s) into study {study_uid}",
            f"study {study_uid} is not in the archive",
        ):
            answer = self.client.store_instances(list(datasets), study_instance_uid=study_uid)
        failed = answer.get("FailedSOPSequence") if answer is not None else None
        if failed:
            reasons = ", ".join(str(item.get("FailureReason", "?")) for item in failed)
            raise PacsError(
                f"archive {self.where} refused {len(failed)} of {len(datasets)} instance(s) "
                f"(failure reason {reasons})",
                kind="http",
            )
        stored = answer.get("ReferencedSOPSequence") if answer is not None else None
        return [str(item.ReferencedSOPInstanceUID) for item in (stored or [])]

    def close(self) -> None:
        self._session.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def _reason(error: BaseException) -> str:
    text = str(error)
    for reason in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "No route to host",
        "Temporary failure in name resolution",
        "Connection reset",
    ):
        if reason.lower() in text.lower():
            return reason.lower()
    return type(error).__name__


def open_archive(settings: ArchiveSettings):
    """A DICOMweb archive when the settings have a URL, else the DIMSE one."""
    if settings.url:
        return DicomWebArchive(settings)
    from nbrisk_core.pacs.dimse import DimseArchive

    return DimseArchive(settings)


__all__ = ["DicomWebArchive", "open_archive"]
