"""The codec (JSON + npz, no pickle) and the session <-> case record adapter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.store import codec
from nbrisk_core.store.session import record_from_session, session_from_record, slices_from


@dataclasses.dataclass
class Foreign:  # not an nbrisk_core class: must come back as a plain dict, never constructed
    value: int


def _round_trip(obj, **kw):
    encoder = codec.Encoder(**kw)
    encoded = encoder.encode(obj)
    blob = codec.pack_arrays(encoder.arrays)
    import json

    return codec.decode(json.loads(json.dumps(encoded)), codec.unpack_arrays(blob)), encoder


def test_round_trip_of_arrays_frames_and_nbrisk_dataclasses():
    from nbrisk_core.imaging.windowing import Window

    frame = pd.DataFrame({"time": [1.0, 2.0], "survival": [0.9, 0.8]})
    obj = {"hu": np.arange(200, dtype=np.int16).reshape(10, 20), "p": np.float32(0.25),
           "emb": np.linspace(0, 1, 16), "frame": frame, "window": Window("abdomen", 400.0, 40.0),
           "foreign": Foreign(3), "t": (1, "a"), "nan": float("nan"), "__array__": "user key"}
    back, _ = _round_trip(obj)
    np.testing.assert_array_equal(back["hu"], obj["hu"])
    assert back["hu"].dtype == np.int16 and back["emb"].shape == (16,)
    pd.testing.assert_frame_equal(back["frame"], frame)
    assert back["window"] == Window("abdomen", 400.0, 40.0)
    assert back["foreign"] == {"value": 3}
    assert back["t"] == (1, "a") and np.isnan(back["nan"]) and back["__array__"] == "user key"


def test_identifiers_and_series_are_left_out_unless_opted_in():
    obj = {"PatientName": "Doe^Jane", "patient_birth_date": "20200101", "AccessionNumber": "A1",
           "series": np.zeros((5, 4, 4), np.int16), "slice": np.zeros((4, 4), np.int16),
           "upload": b"DICM...Doe^Jane..."}
    back, encoder = _round_trip(obj)
    assert set(back) == {"series", "slice", "upload"} and back["series"] is None and back["upload"] is None
    assert "$.PatientName" in encoder.omitted
    with_series, _ = _round_trip(obj, include_series=True)
    assert with_series["series"].shape == (5, 4, 4)


def test_npz_blobs_refuse_pickled_objects():
    import io

    buffer = io.BytesIO()
    np.savez(buffer, evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        codec.unpack_arrays(buffer.getvalue())


def test_sha256_depends_on_content_dtype_and_shape():
    a = np.arange(6, dtype=np.int16)
    assert codec.sha256_of(a) == codec.sha256_of(a.copy())
    assert codec.sha256_of(a) != codec.sha256_of(a.astype(np.int32))
    assert codec.sha256_of(a) != codec.sha256_of(a.reshape(2, 3))
    assert codec.sha256_of({"x": 1, "y": 2}) == codec.sha256_of({"y": 2, "x": 1})


def test_slices_from_accepts_the_shapes_pages_use():
    hu = np.ones((8, 8), np.int16)
    got = slices_from({"art": {"hu": hu, "index": 4, "z_mm": 12.5, "pixel_spacing": (0.7, 0.7)},
                       "NC": hu * 2, "pv": None, "bogus": hu})
    assert list(got) == ["NC", "ART"]
    assert (got["ART"].slice_index, got["ART"].slice_position_mm) == (4, 12.5)
    assert got["ART"].meta == {"pixel_spacing": (0.7, 0.7), "units": "HU"}
    grey = slices_from({"pv": {"hu": None, "grey": np.zeros((4, 4), np.uint8), "index": 0}})
    assert grey["PV"].meta["units"] == "grey8" and grey["PV"].hu.dtype == np.uint8


def test_record_from_session_reads_risk_prognosis_and_clinical_values():
    hu = np.zeros((8, 8), np.int16)
    risk = {"p_high_risk": 0.3, "model_sha256": "f" * 64, "embedding": np.zeros(16)}
    prognosis = {"mlrs": 0.7, "percentile": 61.0, "group": "High MLRS", "imputed": {"ldh": 250.0, "nse": 99.0},
                 "model_sha256": "e" * 64}
    record = record_from_session(chosen_slices={"ART": {"hu": hu}}, risk_result=risk,
                                 clinical_values={"age_months": 40.0, "sex": "M", "nse": 50.0, "ldh": None},
                                 prognosis_result=prognosis, label=" P0001 ")
    assert (record.label, record.age_months, record.sex) == ("P0001", 40.0, "M")
    assert (record.risk_class, record.hr_probability) == ("NHR", 0.3)
    assert (record.mlrs, record.mlrs_percentile, record.mlrs_group) == (0.7, 61.0, "high")
    assert record.clinical_imputed == {"ldh": 250.0}  # nse was entered, so it was not imputed
    assert [(p.kind, p.model_sha256) for p in record.predictions] == [("risk", "f" * 64), ("prognosis", "e" * 64)]
    restored = session_from_record(record)
    assert restored["risk_result"] is risk and restored["prognosis_result"] is prognosis


def test_record_from_session_with_several_models_uses_swin_art_as_primary():
    results = {"nc": {"p_high_risk": 0.9}, "art": {"p_high_risk": 0.6}, "pv": {"p_high_risk": 0.1}}
    record = record_from_session(risk_result=results, label="x")
    assert record.hr_probability == 0.6 and record.risk_class == "HR"
    assert [p.model_name for p in record.predictions] == ["nc", "art", "pv"]


def test_record_from_the_risk_and_prognosis_pages_shapes():
    # the shapes pages/2_Risk.py and pages/3_Prognosis.py keep in the session
    risk = {"p_high_risk": 0.72, "risk_class": "HR", "embedding": [0.1] * 16, "model_sha256": "a" * 64,
            "device": "cpu", "variants": {"art": {"p_high_risk": 0.72, "risk_class": "HR", "model_sha256": "a" * 64},
                                          "nc": {"p_high_risk": 0.4, "risk_class": "NHR", "model_sha256": "b" * 64}}}
    clinical = {"age_months": {"value": 3.0, "unit": "years"}, "sex": "F", "mycn_amplified": 1,
                "nse": {"value": 80.0, "unit": "ng/mL"}}
    times = np.array([0.0, 100.0, 400.0])
    prognosis = {"times": times, "survival": np.array([1.0, 0.9, 0.7]), "low": None, "high": None, "mlrs": 2.5,
                 "percentile": 90.0, "group": "high", "cutoff": 1.0, "model": "StepCox[backward] + RSF",
                 "imputed": ["ldh", "ca125"], "notes": []}
    record = record_from_session(chosen_slices={"art": {"hu": np.zeros((8, 8), np.int16)}}, risk_result=risk,
                                 clinical_values=clinical, prognosis_result=prognosis, label="P0003")
    assert (record.age_months, record.sex, record.risk_class, record.hr_probability) == (36.0, "F", "HR", 0.72)
    assert record.clinical_imputed == {"ldh": None, "ca125": None}
    assert record.clinical_entered["nse"] == {"value": 80.0, "unit": "ng/mL"}
    kinds = [(p.kind, p.model_name, p.model_sha256) for p in record.predictions]
    assert kinds == [("risk", "art", "a" * 64), ("risk", "nc", "b" * 64), ("prognosis", "StepCox[backward] + RSF", None)]
    assert record.predictions[0].result is risk  # the reference result is kept whole (embedding included)
    from nbrisk_core.report.figures import curve_from

    t, s = curve_from(record.predictions[-1].result)
    np.testing.assert_array_equal(t, times)
