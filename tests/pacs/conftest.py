"""A real archive for the PACS tests: Orthanc with its DICOMweb plugin, holding demo studies.

``NBRISK_TEST_ORTHANC_URL`` (``.ci/run`` sets it from ``.ci/orthanc.sh``) names a running one;
without it the session starts its own with ``.ci/orthanc.sh`` and stops it at the end. The tests
skip, with the reason, when Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) is not installed.
Demo studies P0001 and P0002 (three CT phases each; pushes go into P0002) and a study without CT
(one MR instance) are loaded through the
REST API; loading is idempotent, so an archive shared by several runs is fine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ORTHANC_BIN = "/usr/sbin/Orthanc"
#: the demo patients loaded into the archive: P0001 is only read (its counts are asserted), results
#: are pushed into P0002's study
LOADED = ("P0001", "P0002")


@dataclass(frozen=True)
class Orthanc:
    """A running Orthanc: base URL (no credentials), the test user, DICOMweb root and DICOM port."""

    base: str
    username: str
    password: str
    dicom_port: int
    dicom_aet: str

    @property
    def dicomweb(self) -> str:
        return f"{self.base}/dicom-web"

    @property
    def url_with_credentials(self) -> str:
        parts = urlsplit(self.dicomweb)
        return urlunsplit(
            (parts.scheme, f"{self.username}:{self.password}@{parts.netloc}", parts.path, "", "")
        )

    def rest(self, method: str, path: str, **kwargs):
        import requests

        response = requests.request(
            method, self.base + path, auth=(self.username, self.password), timeout=60, **kwargs
        )
        response.raise_for_status()
        return response


def _parse(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port}", "", "", ""))
    return base, parts.username or "", parts.password or ""


def _non_ct_instance() -> bytes:
    """One small MR instance in a study of its own (the 'study without CT' case)."""
    import io

    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName, ds.Modality = "SYNTH-NOCT", "SYNTH^NOCT", "MR"
    ds.StudyInstanceUID = NON_CT_STUDY_UID
    ds.SeriesInstanceUID = NON_CT_STUDY_UID + ".1"
    ds.StudyDate, ds.AccessionNumber = "19000102", "SYNTHNOCT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.zeros((8, 8), np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


NON_CT_STUDY_UID = "2.25.1234567890123456789012345678901"


def _load(orthanc: Orthanc, demo_dir: Path) -> None:
    for patient in LOADED:
        for path in sorted((demo_dir / "studies" / patient).rglob("*.dcm")):
            orthanc.rest(
                "POST", "/instances", data=path.read_bytes(), headers={"Content-Type": "application/dicom"}
            )
    orthanc.rest("POST", "/instances", data=_non_ct_instance(), headers={"Content-Type": "application/dicom"})


def _stop(pid_file: Path) -> None:
    """SIGTERM the Orthanc this session started and wait (up to 20 s) until it has exited."""
    import time

    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 15)
    except (OSError, ValueError):
        return
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)


@pytest.fixture(scope="session")
def orthanc(demo_dir) -> Orthanc:
    """The test archive (started here unless ``NBRISK_TEST_ORTHANC_URL`` names one), with the demo studies."""
    import requests

    url = os.environ.get("NBRISK_TEST_ORTHANC_URL", "").strip()
    workdir = pid_file = None
    if not url:
        if not os.access(ORTHANC_BIN, os.X_OK):
            pytest.skip(
                "Orthanc is not installed (apt-get install -y orthanc orthanc-dicomweb, or set "
                "NBRISK_TEST_ORTHANC_URL); .ci/system-packages.sh installs it"
            )
        workdir = Path(tempfile.mkdtemp(prefix="nbrisk-orthanc-test-"))
        env = dict(os.environ, ORTHANC_DIR=str(workdir / "archive"))
        started = subprocess.run(
            ["bash", str(REPO_ROOT / ".ci" / "orthanc.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if started.returncode != 0:
            shutil.rmtree(workdir, ignore_errors=True)
            pytest.skip(f"Orthanc could not be started: {started.stderr.strip().splitlines()[-1:]}")
        url = started.stdout.strip()
        pid_file = workdir / "archive" / "orthanc.pid"
    base, user, password = _parse(url)
    system = requests.get(base + "/system", auth=(user, password), timeout=30).json()
    archive = Orthanc(base, user, password, int(system["DicomPort"]), str(system["DicomAet"]))
    try:
        _load(archive, demo_dir)
        yield archive
    finally:
        if pid_file is not None:
            _stop(pid_file)
            shutil.rmtree(workdir, ignore_errors=True)


def _study_uid(demo_dir: Path, patient: str) -> str:
    import pydicom

    first = next((demo_dir / "studies" / patient).rglob("*.dcm"))
    return str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture(scope="session")
def demo_study_uid(orthanc, demo_dir) -> str:
    """The archive's Study Instance UID of demo patient P0001 (read only)."""
    return _study_uid(demo_dir, "P0001")


@pytest.fixture(scope="session")
def push_study_uid(orthanc, demo_dir) -> str:
    """The archive's Study Instance UID of demo patient P0002 (the tests push results into it)."""
    return _study_uid(demo_dir, "P0002")


@pytest.fixture
def archive_env(orthanc, monkeypatch):
    """NBRISK_DICOMWEB_* pointing at the test archive, the study link allowed."""
    monkeypatch.setenv("NBRISK_DICOMWEB_URL", orthanc.dicomweb)
    monkeypatch.setenv("NBRISK_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("NBRISK_DICOMWEB_PASSWORD", orthanc.password)
    monkeypatch.setenv("NBRISK_PACS_KEEP_STUDY_LINK", "1")
    monkeypatch.delenv("NBRISK_DICOMWEB_TOKEN", raising=False)
    monkeypatch.setenv("NBRISK_PACS_CONFIG", "/nonexistent/nbrisk-pacs.toml")
    return orthanc
