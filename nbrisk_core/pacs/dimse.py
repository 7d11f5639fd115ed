"""The second route, for archives without DICOMweb: C-FIND and C-GET with pynetdicom.

:class:`DimseArchive` offers :meth:`find_studies`, :meth:`list_series` and :meth:`iter_series` like
:class:`~nbrisk_core.pacs.archive.DicomWebArchive`, so :func:`~nbrisk_core.pacs.pull.pull_study`
works over either. C-GET is used (not C-MOVE) so that no port has to be opened for the archive to
connect back: the instances come over the association NBRisk opened. Pushing results back needs
DICOMweb (STOW-RS) for now.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset

from nbrisk_core.pacs.errors import PacsError
from nbrisk_core.pacs.query import SeriesHit, StudyHit, series_hit, study_filters, study_hit
from nbrisk_core.pacs.settings import ArchiveSettings

#: storage SOP classes accepted on C-GET: CT (and enhanced CT), the images NBRisk reads
_CT_STORAGE = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1")


class DimseArchive:
    """An archive reached with DIMSE (C-FIND / C-GET, Study Root) through pynetdicom."""

    def __init__(self, settings: ArchiveSettings):
        if settings.dimse is None:
            raise PacsError(f"archive {settings.name}: no DICOMweb URL and no dimse settings", kind="input")
        self.settings = settings
        self.dimse = settings.dimse

    @property
    def where(self) -> str:
        return self.settings.display_url()

    def _associate(self, contexts, roles=None, handlers=None):
        from pynetdicom import AE

        ae = AE(ae_title=self.dimse.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.settings.timeout_s
        for context in contexts:
            ae.add_requested_context(context)
        assoc = ae.associate(
            self.dimse.host,
            self.dimse.port,
            ae_title=self.dimse.aet,
            ext_neg=roles or [],
            evt_handlers=handlers or [],
        )
        if not assoc.is_established:
            if assoc.is_rejected:
                raise PacsError(
                    f"archive {self.where} rejected the association from AE title "
                    f"{self.dimse.calling_aet!r}; ask the archive to register it",
                    kind="auth",
                )
            raise PacsError(
                f"archive {self.where} cannot be reached (no DICOM association); check host, port "
                "and AE title",
                kind="unreachable",
            )
        return assoc

    def _find(self, level: str, keys: dict[str, str], returned: tuple[str, ...]) -> list[Dataset]:
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as Find

        query = Dataset()
        query.QueryRetrieveLevel = level
        for keyword in returned:
            setattr(query, keyword, "")
        for keyword, value in keys.items():
            setattr(query, keyword, value)
        assoc = self._associate([Find])
        results = []
        try:
            for status, identifier in assoc.send_c_find(query, Find):
                code = getattr(status, "Status", None)
                if code is None:
                    raise PacsError(
                        f"archive {self.where}: the C-FIND got no answer (timeout)", kind="unreachable"
                    )
                if code in (0xFF00, 0xFF01) and identifier is not None:
                    results.append(identifier)
                elif code not in (0x0000, 0xFF00, 0xFF01):
                    raise PacsError(
                        f"archive {self.where} refused the C-FIND (status 0x{code:04X})", kind="http"
                    )
        finally:
            assoc.release()
        return results

    def find_studies(
        self,
        patient_id: str | None = None,
        accession: str | None = None,
        study_date: str | None = None,
        modality: str | None = "CT",
        limit: int = 200,
    ) -> list[StudyHit]:
        keys = study_filters(patient_id, accession, study_date, modality)
        returned = (
            "StudyInstanceUID",
            "PatientID",
            "StudyDate",
            "ModalitiesInStudy",
            "AccessionNumber",
            "StudyDescription",
            "NumberOfStudyRelatedSeries",
            "NumberOfStudyRelatedInstances",
        )
        hits = [study_hit(ds) for ds in self._find("STUDY", keys, returned)]
        if modality:
            hits = [h for h in hits if not h.modalities or modality.upper() in h.modalities]
        return hits[:limit]

    def list_series(self, study_uid: str) -> list[SeriesHit]:
        returned = (
            "SeriesInstanceUID",
            "Modality",
            "SeriesDescription",
            "SeriesNumber",
            "NumberOfSeriesRelatedInstances",
        )
        found = self._find("SERIES", {"StudyInstanceUID": study_uid}, returned)
        if not found:
            raise PacsError(
                f"archive {self.where}: study {study_uid} is not in the archive (no series found)",
                kind="not_found",
                status=404,
            )
        return sorted((series_hit(ds) for ds in found), key=lambda s: (s.number is None, s.number or 0))

    def iter_series(self, study_uid: str, series_uid: str) -> Iterator[Dataset]:
        """C-GET of one series; the instances are yielded once the C-GET has completed."""
        from pynetdicom import build_role, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as Get

        received: list[Dataset] = []

        def on_store(event):
            ds = event.dataset
            ds.file_meta = event.file_meta
            received.append(ds)
            return 0x0000

        roles = [build_role(uid, scp_role=True) for uid in _CT_STORAGE]
        assoc = self._associate([Get, *_CT_STORAGE], roles, [(evt.EVT_C_STORE, on_store)])
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID, query.SeriesInstanceUID = study_uid, series_uid
        failed = 0
        try:
            for status, identifier in assoc.send_c_get(query, Get):
                code = getattr(status, "Status", None)
                if code is None:
                    raise PacsError(
                        f"archive {self.where}: the C-GET of series {series_uid} broke off "
                        "(partial transfer); nothing was kept, try again",
                        kind="partial",
                    )
                if code not in (0x0000, 0xFF00, 0xB000):
                    raise PacsError(
                        f"archive {self.where} refused the C-GET of series {series_uid} "
                        f"(status 0x{code:04X})",
                        kind="http",
                    )
                failed = int(getattr(status, "NumberOfFailedSuboperations", 0) or 0)
        finally:
            assoc.release()
        if failed:
            raise PacsError(
                f"archive {self.where}: {failed} instance(s) of series {series_uid} failed to arrive "
                "(partial transfer); nothing was kept",
                kind="partial",
            )
        yield from received

    def close(self) -> None:
        pass


__all__ = ["DimseArchive"]
