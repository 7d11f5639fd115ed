"""`nbrisk inspect PATH [--json]`: series and skipped files; exit 0 / 2; never a traceback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

from nbrisk_core.cli import main


def test_inspect_json_lists_series_phases_and_skipped(three_phase_dir, capsys):
    (three_phase_dir / "notes.txt").write_text("not an image")
    assert main(["inspect", str(three_phase_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"series", "skipped", "warnings"}
    assert [s["phase"] for s in report["series"]] == ["nc", "art", "pv"]
    assert all(s["n_slices"] == 12 and s["rows"] == 64 for s in report["series"])
    assert report["skipped"] == [{"file": "notes.txt", "reason": report["skipped"][0]["reason"]}]
    assert "not a DICOM file" in report["skipped"][0]["reason"]


def test_inspect_text_output(series_dir, capsys):
    assert main(["inspect", str(series_dir)]) == 0
    out = capsys.readouterr().out
    assert "1 image series" in out and "12 slices of 64 x 64" in out and "ART" in out


def test_nothing_loadable_exits_2_with_reasons(tmp_path, capsys):
    (tmp_path / "a.dcm").write_bytes(b"\0" * 10)
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no loadable image series" in err and "a.dcm" in err


def test_unsafe_zip_exits_2_in_one_line(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../escape.dcm", b"x")
    (tmp_path / "evil.zip").write_bytes(buffer.getvalue())
    out = subprocess.run([sys.executable, "-m", "nbrisk_core", "inspect", str(tmp_path / "evil.zip")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "path traversal" in lines[0] and "Traceback" not in out.stderr


def test_missing_path_argument_exits_2(capsys):
    assert main(["inspect"]) == 2
    assert "missing PATH" in capsys.readouterr().err
