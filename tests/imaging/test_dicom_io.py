"""Reading CT series: grouping, sorting along the slice normal, HU, warnings, skipped files."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
import pytest
from PIL import Image

from nbrisk_core.errors import InputError
from nbrisk_core.imaging import load_study
from nbrisk_core.imaging.synthetic import write_ct_series


def test_series_sorted_by_position_and_exact_hu(series_dir, phantom):
    hu, _ = phantom
    study = load_study(series_dir)
    assert len(study.series) == 1 and not study.skipped
    series = study.series[0]
    assert series.hu.dtype == np.int16
    np.testing.assert_array_equal(series.hu, hu)  # file names are shuffled: only sorting by z gets this
    np.testing.assert_allclose(series.z_mm, np.arange(12) * 2.0)
    assert series.pixel_spacing == (0.8, 0.8)
    assert series.slice_spacing_mm == pytest.approx(2.0)
    assert series.warnings == []


def test_hu_uses_the_modality_lut(tmp_path, phantom):
    hu, _ = phantom
    # a fractional slope gives float HU, still exactly what pydicom's apply_modality_lut gives
    paths = write_ct_series(tmp_path, hu[:3], intercept=-1024.0)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.RescaleSlope = 0.5
        ds.save_as(path)
    series = load_study(tmp_path).series[0]
    assert series.hu.dtype == np.float32
    reference = pydicom.pixels.apply_modality_lut(pydicom.dcmread(paths[0]).pixel_array, pydicom.dcmread(paths[0]))
    index = int(np.argmin(np.abs(series.z_mm - float(pydicom.dcmread(paths[0]).ImagePositionPatient[2]))))
    np.testing.assert_allclose(series.hu[index], reference)


def test_instance_number_fallback_warns(tmp_path, phantom):
    hu, _ = phantom
    paths = write_ct_series(tmp_path, hu[:5], shuffle_seed=2)
    for path in paths:
        ds = pydicom.dcmread(path)
        del ds.ImagePositionPatient
        ds.save_as(path)
    series = load_study(tmp_path).series[0]
    np.testing.assert_array_equal(series.hu, hu[:5])
    assert any("InstanceNumber" in w for w in series.warnings)


def test_missing_slice_and_uneven_spacing_warn(tmp_path, phantom):
    hu, _ = phantom
    paths = write_ct_series(tmp_path, hu[:8])
    paths[4].unlink()  # file IM0005 holds the slice at z = 8 mm (no shuffle)
    series = load_study(tmp_path).series[0]
    assert series.n_slices == 7
    assert any("missing slices" in w for w in series.warnings)
    assert any("non-uniform slice spacing" in w for w in series.warnings)


def test_gantry_tilt_warns(tmp_path, phantom):
    hu, _ = phantom
    paths = write_ct_series(tmp_path, hu[:4])
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [0.0, 0.5 * k, 2.0 * k]  # each slice shifted along y: a tilted stack
        ds.save_as(path)
    series = load_study(tmp_path).series[0]
    assert any("gantry tilt" in w for w in series.warnings)


def test_mixed_sizes_localizer_and_non_image_are_reported(tmp_path, phantom):
    hu, _ = phantom
    paths = write_ct_series(tmp_path, hu[:4])
    odd = pydicom.dcmread(paths[3])
    odd.Rows, odd.Columns = 32, 32
    odd.PixelData = np.zeros((32, 32), np.uint16).tobytes()
    odd.save_as(paths[3])
    scout = pydicom.dcmread(paths[0])
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.SOPInstanceUID = pydicom.uid.generate_uid()
    scout.save_as(tmp_path / "scout.dcm")
    report = pydicom.dcmread(pydicom.data.get_testdata_file("rtplan.dcm"))
    report.save_as(tmp_path / "plan.dcm")
    study = load_study(tmp_path)
    reasons = {f.name: f.reason for f in study.skipped}
    assert "size 32 x 32" in reasons[paths[3].name]
    assert "localizer" in reasons["scout.dcm"]
    assert "not an image" in reasons["plan.dcm"]
    series = [s for s in study.series if s.header.get("Modality") == "CT"]
    assert len(series) == 1 and series[0].n_slices == 3
    assert any("mixed image sizes" in w for w in series[0].warnings)


def test_truncated_and_random_files_are_skipped_rest_usable(tmp_path, phantom):
    hu, _ = phantom
    paths = write_ct_series(tmp_path / "s", hu[:4])
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])  # truncated in the pixel data
    (tmp_path / "s" / "noise.dcm").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "s" / "empty.dcm").write_bytes(b"")
    study = load_study(tmp_path / "s")
    reasons = {f.name: f.reason for f in study.skipped}
    assert paths[1].name in reasons and "IM0002" in paths[1].name
    assert "not a DICOM file" in reasons["noise.dcm"]
    assert "empty file" in reasons["empty.dcm"]
    assert study.series[0].n_slices == 3  # the rest of the upload is still a series


def test_uploads_as_name_bytes_pairs_and_zip(tmp_path, series_dir, phantom):
    hu, _ = phantom
    uploads = [(p.name, p.read_bytes()) for p in sorted(series_dir.iterdir())]
    from_bytes = load_study(uploads).series[0]
    np.testing.assert_array_equal(from_bytes.hu, hu)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in uploads:
            archive.writestr(f"study/{name}", data)
    (tmp_path / "study.zip").write_bytes(buffer.getvalue())
    np.testing.assert_array_equal(load_study(tmp_path / "study.zip").series[0].hu, hu)


def test_multiframe_enhanced_ct(tmp_path, phantom):
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    hu, _ = phantom
    n = 5
    order = [3, 0, 4, 1, 2]  # frames stored out of z order: positions decide
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "mf.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.Modality = generate_uid(), "CT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 64, 64, n
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    shared = Dataset()
    orientation, measures, transform = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [0.7, 0.7]
    measures.SliceThickness = 3.0
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 1, -1024, "HU"
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for k in order:
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 3.0 * k]
        item.PlanePositionSequence = Sequence([position])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.stack([(hu[k] + 1024).astype(np.uint16) for k in order]).tobytes()
    ds.save_as(tmp_path / "mf.dcm", enforce_file_format=True)
    series = load_study(tmp_path / "mf.dcm").series[0]
    np.testing.assert_array_equal(series.hu, hu[:n])
    assert series.pixel_spacing == (0.7, 0.7)
    np.testing.assert_allclose(series.z_mm, np.arange(n) * 3.0)


def test_dicomdir_is_followed():
    path = pydicom.data.get_testdata_file("DICOMDIR")
    study = load_study(path)
    assert study.series, [f.reason for f in study.skipped]
    assert all(s.n_slices >= 1 for s in study.series)


def test_2d_images_grey_and_rgb(tmp_path):
    grey = (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)
    Image.fromarray(grey).save(tmp_path / "nc.png")
    rgb = np.stack([grey, grey // 2, 255 - grey], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "art.bmp")
    Image.fromarray((grey.astype(np.uint16) * 200)).save(tmp_path / "deep.png")  # 16-bit: refused
    study = load_study(tmp_path)
    by_name = {s.source_names[0]: s for s in study.series}
    np.testing.assert_array_equal(by_name["nc.png"].hu[0], grey)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(by_name["art.bmp"].hu[0], expected)
    assert not by_name["nc.png"].is_hu
    reasons = {f.name: f.reason for f in study.skipped}
    assert "not 8 bits" in reasons["deep.png"]


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_study(tmp_path / "nope")
