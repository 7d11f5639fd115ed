"""Zips are read safely: path traversal, zip bombs, empty archives; unsafe uploads do not sink the rest."""

from __future__ import annotations

import io
import zipfile

import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.imaging import load_study
from nbrisk_core.imaging.sources import read_zip


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_path_traversal_is_refused(tmp_path):
    path = tmp_path / "evil.zip"
    path.write_bytes(_zip({"ok/IM1.dcm": b"x", "../../etc/passwd": b"root"}))
    with pytest.raises(InputError, match="path traversal"):
        load_study(path)
    with pytest.raises(InputError, match="path traversal"):
        read_zip(_zip({"/abs/file": b"x"}), "abs.zip")


def test_zip_bomb_ratio_is_refused(tmp_path):
    bomb = _zip({"zeros.dcm": bytes(50 * 1024 * 1024)})  # 50 MB of zeros deflate to ~50 kB
    assert len(bomb) < 1024 * 1024
    with pytest.raises(InputError, match="zip bomb"):
        read_zip(bomb, "bomb.zip")


def test_zip_total_size_and_count_limits():
    with pytest.raises(InputError, match="at most 2 accepted"):
        read_zip(_zip({"a": b"1", "b": b"2", "c": b"3"}), "many.zip", max_members=2)
    with pytest.raises(InputError, match="uncompressed"):
        read_zip(_zip({"a": b"1" * 5000}), "big.zip", max_total_bytes=1000)


def test_empty_zip_loads_nothing(tmp_path):
    path = tmp_path / "empty.zip"
    path.write_bytes(_zip({}))
    study = load_study(path)
    assert study.series == [] and "no image series could be loaded" in study.warnings


def test_unsafe_zip_among_uploads_leaves_the_rest_usable(series_dir):
    uploads = [(p.name, p.read_bytes()) for p in sorted(series_dir.iterdir())]
    uploads.append(("evil.zip", _zip({"../x.dcm": b"x"})))
    study = load_study(uploads)
    assert study.series[0].n_slices == 12
    reasons = {f.name: f.reason for f in study.skipped}
    assert "path traversal" in reasons["evil.zip"]


def test_not_a_zip_is_reported():
    with pytest.raises(InputError, match="not a readable zip"):
        read_zip(b"PK\x03\x04 broken", "broken.zip")


def test_zip_inside_a_folder_is_expanded(tmp_path, series_dir):
    members = {f"s/{p.name}": p.read_bytes() for p in sorted(series_dir.iterdir())}
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "study.zip").write_bytes(_zip(members))
    (upload / "evil.zip").write_bytes(_zip({"../x": b"x"}))
    study = load_study(upload)
    assert study.series[0].n_slices == 12
    assert any("path traversal" in f.reason for f in study.skipped)
