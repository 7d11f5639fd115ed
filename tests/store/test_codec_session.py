"""The codec (JSON + npz, no pickle) and the session <-> case record adapter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.store import codec
from nbrisk_core.case import Phase
from nbrisk_core.store.session import GREY_UNITS, case_from_record, record_from_case


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


def test_typed_objects_round_trip_through_the_codec_by_type(typed_case):
    case = typed_case()
    back, _ = _round_trip({"risk": case.risk, "prognosis": case.prognosis, "art": case.slices["art"]})
    assert type(back["risk"]) is type(case.risk) and back["risk"].scores == case.risk.scores
    assert list(back["risk"].cams) == [Phase.ART] and isinstance(next(iter(back["risk"].cams)), Phase)
    assert back["prognosis"].imputed == ("ldh",) and back["art"].phase is Phase.ART
    assert back["art"].pixel_spacing == (0.8, 0.8)


def test_record_from_case_reads_the_fields(typed_case):
    case = typed_case(label=" P0001 ", clinical={"age_months": {"value": 3.0, "unit": "years"}, "sex": "M",
                                                 "nse": 50.0, "ldh": None})
    record = record_from_case(case)
    assert (record.label, record.age_months, record.sex) == ("P0001", 36.0, "M")
    assert (record.risk_class, record.hr_probability) == ("HR", 0.81)
    assert (record.mlrs, record.mlrs_percentile, record.mlrs_group) == (1.3, 82.0, "high")
    assert record.clinical_imputed == {"ldh": 410.0}
    assert [(p.kind, p.model_name, p.model_sha256) for p in record.predictions] == \
        [("risk", "art", "a" * 64), ("prognosis", "StepCox[backward] + RSF", "d" * 64)]
    assert list(record.slices) == ["nc", "art", "pv"] and record.slices["art"].slice_index == 4
    assert record.slices["art"].meta["viewer_window"]["width"] == 400.0
    assert record.predictions[0].result is case.risk  # stored whole, typed


def test_a_grey_upload_slice_stays_grey(typed_case):
    from nbrisk_core.case import ChosenSlice

    grey = ChosenSlice("pv", 0, None, grey=np.zeros((4, 4), np.uint8))
    record = record_from_case(typed_case(slices={"pv": grey}, risk=None, prognosis=None))
    assert record.slices["pv"].meta["units"] == GREY_UNITS and record.slices["pv"].hu.dtype == np.uint8
    back = case_from_record(record)
    assert back.slices[Phase.PV].grey is not None and back.slices[Phase.PV].hu is None
