"""Find and pull against a real Orthanc: QIDO-RS/WADO-RS, C-FIND/C-GET, the CLI and the archive's errors."""

from __future__ import annotations

import json
import socket
import tempfile
from pathlib import Path

import pydicom
import pytest

from nbrisk_core.cli import main
from nbrisk_core.pacs.archive import DicomWebArchive, open_archive
from nbrisk_core.pacs.errors import PacsError
from nbrisk_core.pacs.pull import link_deidentifier, load_pulled, pull_study
from nbrisk_core.pacs.settings import ArchiveSettings, DimseSettings, resolve

from .conftest import NON_CT_STUDY_UID


def _dicomweb(orthanc, **overrides) -> DicomWebArchive:
    settings = ArchiveSettings(
        name="test",
        url=orthanc.dicomweb,
        auth="basic",
        username=orthanc.username,
        password=orthanc.password,
        timeout_s=20,
        **overrides,
    )
    return DicomWebArchive(settings)


def _pacs_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("nbrisk-upload-*-pacs-*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_find_by_patient_id_accession_and_date(orthanc, demo_study_uid):
    archive = _dicomweb(orthanc)
    by_id = archive.find_studies(patient_id="SYNTH-P0001")
    assert [h.study_uid for h in by_id] == [demo_study_uid]
    hit = by_id[0]
    assert hit.modalities == ["CT"] and hit.n_series == 3 and hit.n_instances == 144
    assert [h.study_uid for h in archive.find_studies(accession=hit.accession)] == [demo_study_uid]
    on_the_day = {h.study_uid for h in archive.find_studies(study_date=hit.study_date)}
    assert demo_study_uid in on_the_day and NON_CT_STUDY_UID not in on_the_day  # the MR study is a day later
    assert [h.study_uid for h in archive.find_studies(patient_id="SYNTH-P0001", study_date="19000102-")] == []
    assert archive.find_studies(patient_id="NO-SUCH-PATIENT") == []
    # CT only by default; the MR-only study shows up when any modality is asked for
    assert NON_CT_STUDY_UID not in {h.study_uid for h in archive.find_studies()}
    assert NON_CT_STUDY_UID in {h.study_uid for h in archive.find_studies(modality=None)}


def test_pull_reads_and_deidentifies_like_an_upload(orthanc, demo_study_uid, demo_dir):
    from nbrisk_core.imaging.dicom_io import load_study

    before = _pacs_dirs()
    done = []
    pulled = pull_study(
        _dicomweb(orthanc), demo_study_uid, progress=lambda n, total, _: done.append((n, total))
    )
    assert len(pulled.files) == 144 and done[-1] == (144, 144)
    study = load_pulled(pulled)
    assert not pulled.path.exists() and _pacs_dirs() == before  # the raw files are gone
    local = load_study(demo_dir / "studies" / "P0001")
    assert [s.shape for s in study.series] == [s.shape for s in local.series]
    assert all((a.hu == b.hu).all() for a, b in zip(study.series, local.series))
    originals = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID)
        for p in (demo_dir / "studies" / "P0001").rglob("*.dcm")
    }
    assert not originals & {s.series_uid for s in study.series}  # UIDs remapped
    assert all("PatientID" not in s.header for s in study.series)


def test_study_link_key_is_derived_from_the_study_uid_only_when_kept(orthanc, demo_study_uid):
    kept = load_pulled(pull_study(_dicomweb(orthanc, keep_study_link=True), demo_study_uid))
    original = _dicomweb(orthanc).list_series(demo_study_uid)
    assert [s.series_uid for s in kept.series] == [
        link_deidentifier(demo_study_uid).uid(s.series_uid) for s in original
    ]
    not_kept = load_pulled(pull_study(_dicomweb(orthanc), demo_study_uid))
    assert {s.series_uid for s in not_kept.series}.isdisjoint(s.series_uid for s in kept.series)


def test_dimse_route_finds_and_pulls(orthanc, demo_study_uid):
    settings = ArchiveSettings(
        name="dimse",
        timeout_s=20,
        dimse=DimseSettings("127.0.0.1", orthanc.dicom_port, orthanc.dicom_aet, "NBRISK"),
    )
    archive = open_archive(settings)
    assert [h.study_uid for h in archive.find_studies(patient_id="SYNTH-P0001")] == [demo_study_uid]
    study = load_pulled(pull_study(archive, demo_study_uid))
    assert [s.n_slices for s in study.series] == [48, 48, 48]
    stranger = open_archive(
        ArchiveSettings(
            name="x",
            timeout_s=10,
            dimse=DimseSettings("127.0.0.1", orthanc.dicom_port, orthanc.dicom_aet, "STRANGER"),
        )
    )
    with pytest.raises(PacsError, match="rejected the association") as caught:
        stranger.find_studies()
    assert caught.value.kind == "auth"


@pytest.mark.parametrize("case", ["unreachable", "401", "404", "no_ct"])
def test_archive_errors_are_clear_and_keep_nothing(orthanc, demo_study_uid, case):
    before = _pacs_dirs()
    archive, study_uid = _dicomweb(orthanc), demo_study_uid
    if case == "unreachable":
        archive = DicomWebArchive(
            ArchiveSettings(name="t", url=f"http://127.0.0.1:{_free_port()}/dicom-web", timeout_s=5)
        )
        expected = ("unreachable", "cannot be reached")
    elif case == "401":
        archive = _dicomweb(orthanc)
        archive._session.auth = (orthanc.username, "wrong-password")
        expected = ("auth", "refused our credentials (HTTP 401)")
    elif case == "404":
        study_uid = "2.25.1"
        expected = ("not_found", "study 2.25.1 is not in the archive")
    else:
        study_uid = NON_CT_STUDY_UID
        expected = ("no_ct", "has no CT series (it holds MR)")
    with pytest.raises(PacsError) as caught:
        pull_study(archive, study_uid)
    assert caught.value.kind == expected[0] and expected[1] in str(caught.value)
    assert "wrong-password" not in str(caught.value) and orthanc.password not in str(caught.value)
    assert _pacs_dirs() == before


class _ShortArchive(DicomWebArchive):
    """Delivers only the first 5 instances of each series (an archive that drops the transfer)."""

    def __init__(self, settings, broken: bool):
        super().__init__(settings)
        self.broken = broken

    def iter_series(self, study_uid, series_uid):
        import requests

        for i, ds in enumerate(super().iter_series(study_uid, series_uid)):
            if i == 5:
                if self.broken:
                    with self._calling("retrieve"):
                        raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")
                return
            yield ds


@pytest.mark.parametrize("broken", [False, True], ids=["short", "broken-off"])
def test_partial_transfer_is_refused_and_nothing_kept(orthanc, demo_study_uid, broken):
    before = _pacs_dirs()
    archive = _ShortArchive(_dicomweb(orthanc).settings, broken)
    with pytest.raises(PacsError, match="partial transfer") as caught:
        pull_study(archive, demo_study_uid)
    assert caught.value.kind == "partial"
    assert _pacs_dirs() == before


def test_cli_find_json_and_pull(archive_env, demo_study_uid, tmp_path, capsys):
    assert main(["pacs", "find", "--patient-id", "SYNTH-P0001", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found == [
        {
            "study_uid": demo_study_uid,
            "patient_id": "SYNTH-P0001",
            "study_date": found[0]["study_date"],
            "modalities": ["CT"],
            "n_series": 3,
            "n_instances": 144,
        }
    ]
    out = tmp_path / "study"
    assert main(["pacs", "pull", demo_study_uid, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert len(list(out.glob("*.dcm"))) == 144
    assert main(["inspect", str(out)]) == 0
    assert capsys.readouterr().out == printed  # the same summary `nbrisk inspect DIR` prints
    first = pydicom.dcmread(next(out.glob("*.dcm")))
    assert first.PatientID == "" and first.PatientIdentityRemoved == "YES"
    # a second pull into the same (now full) folder is refused; the folder is left as it was
    assert main(["pacs", "pull", demo_study_uid, "--out", str(out)]) == 2
    assert "not an empty folder" in capsys.readouterr().err and len(list(out.glob("*.dcm"))) == 144


def test_cli_url_overrides_env_and_errors_are_one_line(archive_env, monkeypatch, capsys):
    monkeypatch.setenv("NBRISK_DICOMWEB_URL", f"http://127.0.0.1:{_free_port()}/dicom-web")
    assert main(["pacs", "find"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be reached" in err
    assert main(["pacs", "find", "--url", archive_env.dicomweb, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert (
        main(["pacs", "pull", "--url", archive_env.dicomweb, "2.25.1", "--out", "/tmp/nbrisk-never-made"])
        == 2
    )
    assert "not in the archive" in capsys.readouterr().err and not Path("/tmp/nbrisk-never-made").exists()


def test_settings_credentials_never_in_repr_or_messages(tmp_path):
    settings = resolve(url="https://alice:s3cret@pacs.example.org/dicom-web/", env={})
    assert settings.url == "https://pacs.example.org/dicom-web" and settings.password == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in settings.display_url()
    assert settings.verify_tls is True
    token = resolve(env={"NBRISK_DICOMWEB_URL": "https://p.example/dw", "NBRISK_DICOMWEB_TOKEN": "tok"})
    assert token.auth == "bearer" and "tok" not in repr(token)
    with pytest.raises(PacsError.__mro__[1], match="not an http"):
        resolve(url="ftp://u:pw@host/x", env={})
    config = tmp_path / "pacs.toml"
    config.write_text(
        '[archives.main]\nurl = "https://pacs.example.org/dicom-web"\nauth = "basic"\n'
        'username_env = "U"\npassword_env = "P"\nkeep_study_link = true\n'
        '[archives.old]\ndimse = {host = "10.0.0.5", port = 104, aet = "OLDPACS"}\n'
    )
    env = {"NBRISK_PACS_CONFIG": str(config), "U": "bob", "P": "pw"}
    main_archive = resolve(archive="main", env=env)
    assert (main_archive.username, main_archive.password, main_archive.keep_study_link) == ("bob", "pw", True)
    assert resolve(archive="old", env=env).dimse.aet == "OLDPACS"
    with pytest.raises(Exception, match="environment variable is not set"):
        resolve(archive="main", env={"NBRISK_PACS_CONFIG": str(config)})
    config.write_text('[archives.x]\nurl = "https://h/dw"\npassword = "inline"\n')
    with pytest.raises(Exception, match="unknown key"):
        resolve(archive="x", env=env)
    with pytest.raises(Exception, match="no archive configured"):
        resolve(env={})
