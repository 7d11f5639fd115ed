"""`nbrisk cohort import --studies`: per-patient DICOM folders (and a zip) made by the demo generator are
read with the NBRisk reader, written de-identified under the study number, and their phases assigned."""

from __future__ import annotations

import json
import shutil
import zipfile

import pydicom
import pytest

from nbrisk_core.cli import main
from nbrisk_core.cohort import load_cohort
from tests.cohort.conftest import MAPPING, site_tables

N = 12


@pytest.fixture(scope="module")
def studies_site(tmp_path_factory):
    """A 12-patient sheet and the DICOM studies of its first two patients (one folder, one zip)."""
    from nbrisk_core.demo.cohort import cohort_geometry, generate_cohort_tables
    from nbrisk_core.demo.dicom import write_study_files

    root = tmp_path_factory.mktemp("studies-site")
    sheet, _ = site_tables(N, seed=99)
    sheet.to_csv(root / "site.csv", index=False)
    (root / "site.toml").write_text(MAPPING)
    table = generate_cohort_tables(N, 99)
    pacs = root / "pacs"
    for number, as_zip in ((1, False), (2, True)):
        row = table.iloc[number - 1]
        # the generator names files after its own IDs (P0001, with PatientName SYNTHETIC^P0001)
        write_study_files(cohort_geometry(row, 99, number), row.to_dict(), 99, row["patient_id"],
                          root / "raw")
        study_number = sheet.loc[number - 1, "Study number"]
        if as_zip:
            with zipfile.ZipFile(pacs / f"{study_number}.zip", "w") as archive:
                for path in sorted((root / "raw" / row["patient_id"]).rglob("*.dcm")):
                    archive.write(path, path.relative_to(root / "raw").as_posix())
        else:
            pacs.mkdir()
            shutil.copytree(root / "raw" / row["patient_id"], pacs / "any-name")
    (root / "studies-map.csv").write_text("patient_id,study\nSB-001,any-name\n")
    return root, sheet


def test_studies_are_ingested_deidentified_with_phases(studies_site, tmp_path, capsys):
    root, sheet = studies_site
    keep = sheet.iloc[:2]
    keep.to_csv(tmp_path / "two.csv", index=False)
    out = tmp_path / "site-b"
    assert main(["cohort", "import", "--clinical", str(tmp_path / "two.csv"),
                 "--mapping", str(root / "site.toml"), "--studies", str(root / "pacs"),
                 "--studies-map", str(root / "studies-map.csv"), "--out", str(out), "--quiet"]) == 0
    cohort = load_cohort(out)
    assert cohort.meta["phase_counts"] == {"nc": 2, "art": 2, "pv": 2}
    report = json.loads((out / "import-report.json").read_text())
    for pid in ("SB-001", "SB-002"):
        study = report["studies"][pid]
        assert study["phases"] == ["nc", "art", "pv"] and study["problems"] == []
        assert cohort.study_dir(pid) is not None
        for phase in ("NC", "ART", "PV"):
            files = sorted((out / "studies" / pid / phase).glob("IM*.dcm"))
            assert len(files) == 48, (pid, phase)
        ds = pydicom.dcmread(sorted((out / "studies" / pid / "ART").glob("IM*.dcm"))[0])
        # the study number is the only identity; the DICOM's own PatientName/ID are never stored
        assert ds.PatientID == pid and str(ds.PatientName) == pid and ds.PatientIdentityRemoved == "YES"
        assert all(b"SYNTH" not in path.read_bytes() for path in (out / "studies" / pid).rglob("*.dcm"))
        assert study["series"][0]["series_uid"].startswith("2.25.")


def test_study_problems_are_listed_and_a_missing_study_fails(studies_site, tmp_path, capsys):
    root, sheet = studies_site
    pacs = tmp_path / "pacs"
    shutil.copytree(root / "pacs" / "any-name", pacs / "SB-001")
    shutil.rmtree(pacs / "SB-001" / "PV")   # a phase missing
    sheet.iloc[:2].to_csv(tmp_path / "two.csv", index=False)
    args = ["cohort", "import", "--clinical", str(tmp_path / "two.csv"), "--mapping", str(root / "site.toml"),
            "--studies", str(pacs), "--out", str(tmp_path / "out" / "c"), "--quiet"]
    # SB-002 has no study: the named error, exit 2, nothing written (no study is even read)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "SB-002" in err and "no study found for this patient in pacs" in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    # with --drop-invalid the patient with a study is imported, its missing phase listed
    assert main([*args, "--drop-invalid"]) == 0
    assert "SB-001: phase PV missing" in capsys.readouterr().out
    cohort = load_cohort(tmp_path / "out" / "c")
    assert cohort.patient_ids == ["SB-001"] and cohort.meta["phase_counts"] == {"nc": 1, "art": 1, "pv": 0}
