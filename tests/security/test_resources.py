"""Memory bounded by what the data holds, zip budgets, and raw uploads that do not outlive their reading
(issue 18, items 8 and 7's raw-upload part). Each test replays the reported attack on a small scale."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.imaging import dicom_io, load_study, sources
from nbrisk_core.imaging.synthetic import phantom_volume, write_ct_series
from nbrisk_core.imaging.upload import PREFIX, UploadDir, sweep_stale_uploads

REPO_ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


@pytest.fixture()
def slices(tmp_path) -> list[Path]:
    hu, _ = phantom_volume(4, 32, 32, seed=5)
    return write_ct_series(tmp_path / "series", hu)


def _rewrite(path: Path, **values) -> bytes:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def _peak_bytes(function) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------------------------
# item 8: a header cannot make the reader allocate what the pixel data does not hold

def test_number_of_frames_beyond_the_pixel_data_is_refused_before_allocating(slices):
    # the reported file: ~130 KB claiming 10^8 frames ran 300 s at 7.2 GB
    blob = _rewrite(slices[0], NumberOfFrames=10**8)
    study, peak = _peak_bytes(lambda: load_study([("frames.dcm", blob)]))
    assert not study.series and peak < 16 * MB
    reason = study.skipped[0].reason
    assert "NumberOfFrames 100000000" in reason and f"holds {32 * 32 * 2} bytes" in reason


def test_huge_rows_and_columns_are_refused_before_allocating(slices):
    # the reported upload: Rows = Columns = 65535 on 4 slices asked for 32 GiB (MemoryError)
    uploads = [(f"IM{i}.dcm", _rewrite(p, Rows=65535, Columns=65535)) for i, p in enumerate(slices)]
    study, peak = _peak_bytes(lambda: load_study(uploads))
    assert not study.series and peak < 16 * MB
    assert len(study.skipped) == 4
    assert all("Rows 65535" in f.reason and "Columns 65535" in f.reason for f in study.skipped)


def test_compressed_frames_need_a_fragment_each():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("MR_small_RLE.dcm", download=False)
    if path is None:
        pytest.skip("MR_small_RLE.dcm is not shipped with this pydicom")
    blob = _rewrite(Path(path), NumberOfFrames=10**8)
    study = load_study([("rle.dcm", blob)])
    assert not study.series and "NumberOfFrames = 100000000" in study.skipped[0].reason


def test_volume_beyond_the_study_budget_is_refused_with_the_numbers(slices, monkeypatch):
    monkeypatch.setattr(dicom_io, "MAX_STUDY_BYTES", 3 * 32 * 32 * 2)  # room for 3 of the 4 slices
    study, peak = _peak_bytes(lambda: load_study(slices[0].parent))
    assert not study.series
    reason = study.skipped[0].reason
    assert "4 slices of 32 x 32 (int16) need 8.0 KiB" in reason and "at most 6.0 KiB" in reason
    assert "refused before allocating" in reason
    monkeypatch.setattr(dicom_io, "MAX_STUDY_BYTES", 4 * 32 * 32 * 2)
    assert load_study(slices[0].parent).series[0].n_slices == 4


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _compressible(n_bytes: int, seed: int) -> bytes:
    """About 40:1 under deflate, like the reported 46:1 zip (below the 200:1 bomb ratio)."""
    rng = np.random.default_rng(seed)
    data = np.zeros(n_bytes, dtype=np.uint8)
    data[rng.integers(0, n_bytes, n_bytes // 60)] = rng.integers(1, 255, n_bytes // 60, dtype=np.uint8)
    return data.tobytes()


def test_zip_members_are_inflated_to_disk_not_memory(tmp_path):
    # the reported zip: 64 members at 46:1 inflated fully in memory; here 24 x 1 MB at ~40:1
    member = _compressible(MB, seed=1)
    blob = _zip({f"m{i:02d}.dcm": member for i in range(24)})
    assert 10 < 24 * MB / len(blob) < 200
    (tmp_path / "u.zip").write_bytes(blob)
    study, peak = _peak_bytes(lambda: load_study(tmp_path / "u.zip"))
    assert len(study.skipped) == 24 and peak < 8 * MB  # in memory, 24 MB
    leftovers = list(Path(tempfile.gettempdir()).glob(f"{PREFIX}{os.getpid()}-zip-*"))
    assert leftovers == []  # the scratch folder is removed when the reader is done


def test_inflated_bytes_have_one_budget_per_upload(monkeypatch):
    monkeypatch.setattr(sources, "ZIP_MAX_TOTAL_BYTES", 3 * MB)
    first = _zip({f"a{i}.dcm": _compressible(MB, seed=i) for i in range(2)})
    second = _zip({f"b{i}.dcm": _compressible(MB, seed=10 + i) for i in range(2)})
    # each zip alone is within the budget; together (one upload) they are not
    assert len(load_study([("first.zip", first)]).skipped) == 2
    study = load_study([("first.zip", first), ("second.zip", second)])
    reasons = {f.name: f.reason for f in study.skipped}
    assert "first.zip/a0.dcm" in reasons
    assert "second.zip" in reasons and "budget of 3.0 MiB of unzipped content" in reasons["second.zip"]
    assert "2.0 MiB already used" in reasons["second.zip"] and "zip bomb" in reasons["second.zip"]


def test_member_beyond_the_budget_is_named_while_inflating(monkeypatch):
    # declared sizes pass (the budget is checked again chunk by chunk, as bytes are inflated)
    budget = sources.InflateBudget(limit=3 * MB)
    blob = _zip({"ok.dcm": _compressible(MB, seed=3), "big.dcm": _compressible(2 * MB, seed=4)})
    budget.used = budget.limit - 2 * MB  # another zip of the upload used the rest
    with pytest.raises(InputError, match="member 'big.dcm'|declares"):
        sources.read_zip(blob, "u.zip", budget=budget)
    budget = sources.InflateBudget(limit=3 * MB)
    archive = zipfile.ZipFile(io.BytesIO(blob))
    info = archive.getinfo("big.dcm")
    budget.used = budget.limit - MB
    with pytest.raises(InputError, match=r"member 'big.dcm' inflates beyond the upload's budget of 3.0 MiB"):
        sources._inflate(archive, info, "u.zip", 200.0, None, budget)


def test_scratch_files_are_private(tmp_path):
    scratch = sources.Scratch()
    fd, path = scratch.new_file()
    os.close(fd)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert path.parent.name.startswith(f"{PREFIX}{os.getpid()}-zip-")
    finally:
        scratch.close()
    assert not path.parent.exists()


def test_image_claiming_too_many_pixels_is_refused_before_decoding(tmp_path):
    from PIL import Image

    path = tmp_path / "huge.png"
    Image.new("L", (9000, 9000)).save(path)  # 81 M pixels, compresses to ~80 KB
    study, peak = _peak_bytes(lambda: load_study(path))
    assert not study.series and "9000 x 9000 pixels" in study.skipped[0].reason and peak < 16 * MB


# --------------------------------------------------------------------------------------------
# item 7 (raw uploads): numbered names, 0600/0700, deleted once read, swept after a crash

def test_raw_upload_is_numbered_private_and_deleted_once_read(slices):
    folder = UploadDir()
    try:
        saved = [folder.save(f"Doe^John {i}.dcm", p.read_bytes()) for i, p in enumerate(slices[:3])]
        uploaded = io.BytesIO(slices[3].read_bytes())  # what Streamlit's UploadedFile is
        uploaded.read(10)
        saved.append(folder.save("Doe^John 3.dcm", uploaded))  # streamed from its start, not via getvalue()
        saved.append(folder.save("../arterial phase.png", _png()))
        assert [p.name for p in saved] == [f"{i:04d}.upload" for i in range(1, 6)]
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in saved)
        assert stat.S_IMODE(folder.path.stat().st_mode) == 0o700
        assert not any("Doe" in p.name for p in folder.path.iterdir())
        study = folder.read_study()
        assert list(folder.path.iterdir()) == []  # raw files gone as soon as the study is read
        assert study.series[0].n_slices == 4
        image = [s for s in study.series if s.header.get("image_file")][0]
        # the display name still carries the user's file name (phase cue), in memory only
        assert image.source_names == ["arterial phase.png"] and "art" in image.header["description_keywords"]
    finally:
        folder.close()


def test_raw_upload_is_deleted_even_when_reading_fails(slices, monkeypatch):
    folder = UploadDir()
    try:
        folder.save("IM1.dcm", slices[0].read_bytes())

        def broken(*args, **kwargs):
            raise InputError("boom")

        monkeypatch.setattr(dicom_io, "load_study", broken)
        with pytest.raises(InputError):
            folder.read_study()
        assert list(folder.path.iterdir()) == []
    finally:
        folder.close()


def test_uploads_of_a_crashed_server_are_swept(tmp_path):
    # a server that dies (no finalizers, no atexit) leaves its upload folder behind
    code = ("import os; from nbrisk_core.imaging.upload import UploadDir; d = UploadDir(); "
            "d.save('Doe^John.dcm', b'raw header'); print(d.path, flush=True); os._exit(1)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(tmp_path)})
    left = Path(done.stdout.strip())
    assert left.parent == tmp_path and any(left.iterdir())
    alive = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-session-", dir=tmp_path))
    legacy = Path(tempfile.mkdtemp(prefix=PREFIX, dir=tmp_path))  # made by an older NBRisk: no pid
    os.utime(legacy, (0, 0))
    removed = sweep_stale_uploads(tmp_path)
    assert set(removed) == {left, legacy}
    assert not left.exists() and not legacy.exists() and alive.exists()


def test_dashboard_sweeps_at_start():
    text = (REPO_ROOT / "streamlit_app.py").read_text()
    assert "sweep_stale_uploads()" in text and "@st.cache_resource" in text


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16), 90, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
