"""Encode the dashboard's working objects as JSON + one npz blob, and decode them back. No pickle.

A case is saved from whatever the Case, Risk and Prognosis pages keep in the session (dicts,
dataclasses, numpy arrays, pandas tables). :func:`encode` turns such an object into plain JSON
where every array is replaced by a reference into a dict of arrays (saved with ``np.savez``,
``allow_pickle=False``); :func:`decode` rebuilds it. Dataclasses are rebuilt only when their class
lives in ``nbrisk_core`` (imported by name, constructed with its fields), never by unpickling.

De-identification happens here too: keys that name a DICOM identifier (PatientName (0010,0010),
PatientBirthDate (0010,0030), AccessionNumber (0008,0050), ...) are dropped, raw bytes (uploaded
files, whose headers carry identifiers) are never stored, and 3-D arrays (whole series) are left
out unless the caller opts in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import importlib
import io
import json
import math
from pathlib import PurePath
from typing import Any

import numpy as np

from nbrisk_core.hashing import feed_array

#: keys never stored (normalised: lower case, no separators); DICOM PS3.15 Annex E identifiers
IDENTIFIER_KEYS: frozenset[str] = frozenset({
    "patientname", "patientsname", "patientbirthdate", "patientsbirthdate", "birthdate", "dateofbirth",
    "patientaddress", "patientsaddress", "patienttelephonenumbers", "otherpatientids", "otherpatientnames",
    "accessionnumber", "institutionname", "institutionaddress", "referringphysicianname",
    "performingphysicianname", "operatorsname", "physiciansofrecord", "studyinstanceuid",
    "seriesinstanceuid", "sopinstanceuid", "frameofreferenceuid", "medicalrecordlocator",
    "patientmothersbirthname", "mothersname", "fullname", "firstname", "lastname", "mrn",
    "medicalrecordnumber", "filename", "filepath", "sourcepath", "uploadpath",
})

#: arrays up to this many elements are kept inline as JSON lists (embeddings, probabilities)
INLINE_ARRAY_MAX = 64


def normalise_key(key: str) -> str:
    return "".join(ch for ch in str(key).lower() if ch.isalnum())


def is_identifier_key(key: str) -> bool:
    return normalise_key(key) in IDENTIFIER_KEYS


class Encoder:
    """Collects arrays while encoding; ``arrays`` is what goes into the npz blob."""

    def __init__(self, *, include_series: bool = False, prefix: str = "a"):
        self.include_series = include_series
        self.prefix = prefix
        self.arrays: dict[str, np.ndarray] = {}
        self.omitted: list[str] = []

    def _store_array(self, arr: np.ndarray, where: str) -> Any:
        if arr.dtype == object:
            return {"__list__": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(arr.tolist())]}
        if arr.ndim >= 3 and not self.include_series:
            self.omitted.append(where)
            return {"__omitted__": "series", "shape": list(arr.shape), "dtype": str(arr.dtype)}
        if arr.size <= INLINE_ARRAY_MAX and arr.dtype.kind in "biuf":
            return {"__ndarray__": [_json_scalar(v) for v in arr.ravel().tolist()],
                    "shape": list(arr.shape), "dtype": str(arr.dtype)}
        key = f"{self.prefix}{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(arr)
        return {"__array__": key}

    def encode(self, obj: Any, where: str = "$") -> Any:
        """Plain-JSON form of ``obj``."""
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
            return int(obj)
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, (float, np.floating)):
            return _json_scalar(float(obj))
        if isinstance(obj, np.ndarray):
            return self._store_array(obj, where)
        if isinstance(obj, enum.Enum):
            return self.encode(obj.value, where)
        if isinstance(obj, (dt.datetime, dt.date)):
            return {"__datetime__": obj.isoformat()}
        if isinstance(obj, PurePath):
            # file paths can carry names; they are an upload detail, not case data
            self.omitted.append(where)
            return None
        if isinstance(obj, (bytes, bytearray, memoryview)):
            # raw bytes are uploaded files (DICOM headers carry names and dates): never stored
            self.omitted.append(where)
            return {"__omitted__": "bytes", "size": len(obj)}
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is a dependency
            pd = None
        if pd is not None and isinstance(obj, pd.DataFrame):
            return {"__dataframe__": {"columns": [self.encode(c) for c in obj.columns],
                                      "index": self.encode(obj.index.to_numpy(), f"{where}.index"),
                                      "index_name": obj.index.name,
                                      "data": {str(i): self.encode(obj[c].to_numpy(), f"{where}.{c}")
                                               for i, c in enumerate(obj.columns)}}}
        if pd is not None and isinstance(obj, pd.Series):
            return {"__series__": {"name": self.encode(obj.name),
                                   "index": self.encode(obj.index.to_numpy(), f"{where}.index"),
                                   "values": self.encode(obj.to_numpy(), where)}}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            cls = type(obj)
            fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
            return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
                    "fields": self._encode_mapping(fields, where)}
        if isinstance(obj, dict):
            return {"__dict__": self._encode_mapping(obj, where)} if _needs_wrapping(obj) \
                else self._encode_mapping(obj, where)
        if isinstance(obj, (list, tuple, set, frozenset)):
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
            return items if isinstance(obj, list) else {"__tuple__": items}
        if hasattr(obj, "__dict__"):
            # a plain object (no dataclass): keep its public attributes, rebuilt as a dict
            attrs = {k: v for k, v in vars(obj).items() if not k.startswith("_") and not callable(v)}
            return {"__object__": f"{type(obj).__module__}:{type(obj).__qualname__}",
                    "fields": self._encode_mapping(attrs, where)}
        self.omitted.append(where)
        return {"__unsupported__": type(obj).__name__}

    def _encode_mapping(self, mapping: dict, where: str) -> dict:
        out = {}
        for key, value in mapping.items():
            if is_identifier_key(key):
                self.omitted.append(f"{where}.{key}")
                continue
            out[str(key)] = self.encode(value, f"{where}.{key}")
        return out


def _needs_wrapping(mapping: dict) -> bool:
    # a user dict whose keys look like the codec's markers must not be mistaken for one
    return any(isinstance(k, str) and k.startswith("__") and k.endswith("__") for k in mapping)


def _json_scalar(value):
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    return value


def decode(obj: Any, arrays: dict[str, np.ndarray] | None = None) -> Any:
    """Inverse of :meth:`Encoder.encode` (dataclasses only from ``nbrisk_core``, else dicts)."""
    arrays = arrays or {}
    if isinstance(obj, list):
        return [decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        (marker, value), = obj.items()
        if marker == "__array__":
            return arrays[value]
        if marker == "__bytes__":
            return arrays[value].tobytes()
        if marker == "__datetime__":
            return dt.datetime.fromisoformat(value)
        if marker == "__tuple__":
            return tuple(decode(v, arrays) for v in value)
        if marker == "__list__":
            return np.array([decode(v, arrays) for v in value], dtype=object)
        if marker == "__float__":
            return float(value)
        if marker == "__dict__":
            return {k: decode(v, arrays) for k, v in value.items()}
        if marker == "__dataframe__":
            import pandas as pd

            columns = [decode(c, arrays) for c in value["columns"]]
            data = {c: decode(value["data"][str(i)], arrays) for i, c in enumerate(columns)}
            frame = pd.DataFrame(data, index=decode(value["index"], arrays), columns=columns)
            frame.index.name = value.get("index_name")
            return frame
        if marker == "__series__":
            import pandas as pd

            return pd.Series(decode(value["values"], arrays), index=decode(value["index"], arrays),
                             name=decode(value["name"], arrays))
        if marker == "__unsupported__":
            return None
    if "__ndarray__" in obj and set(obj) == {"__ndarray__", "shape", "dtype"}:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"]).reshape(obj["shape"])
    if "__omitted__" in obj:
        return None
    if set(obj) == {"__dataclass__", "fields"}:
        fields = {k: decode(v, arrays) for k, v in obj["fields"].items()}
        cls = _nbrisk_dataclass(obj["__dataclass__"])
        if cls is not None:
            try:
                return cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls)
                              if f.init and f.name in fields})
            except TypeError:
                pass  # the class changed since the case was saved: fall back to its fields
        return fields
    if set(obj) == {"__object__", "fields"}:
        return {k: decode(v, arrays) for k, v in obj["fields"].items()}
    return {k: decode(v, arrays) for k, v in obj.items()}


def _nbrisk_dataclass(qualified: str):
    module_name, _, qualname = qualified.partition(":")
    if not (module_name == "nbrisk_core" or module_name.startswith("nbrisk_core.")):
        return None
    try:
        target = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return target if dataclasses.is_dataclass(target) and isinstance(target, type) else None


def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes | None:
    """Compressed npz bytes of ``arrays`` (None when empty)."""
    if not arrays:
        return None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def unpack_arrays(blob: bytes | None) -> dict[str, np.ndarray]:
    """Arrays of an npz blob; object arrays are refused (``allow_pickle=False``)."""
    if not blob:
        return {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def sha256_of(obj: Any) -> str:
    """SHA-256 of an object's content: arrays by dtype, shape and bytes; the rest by canonical JSON."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest, obj: Any) -> None:
    if isinstance(obj, np.ndarray):
        feed_array(digest, obj)
        return
    if isinstance(obj, dict):
        digest.update(b"{")
        for key in sorted(obj, key=str):
            digest.update(json.dumps(str(key)).encode())
            _feed(digest, obj[key])
        digest.update(b"}")
        return
    if isinstance(obj, (list, tuple)):
        digest.update(b"[")
        for item in obj:
            _feed(digest, item)
        digest.update(b"]")
        return
    encoder = Encoder(include_series=True)
    encoded = encoder.encode(obj)
    if encoder.arrays or encoded != obj:
        _feed(digest, {"encoded": encoded, "arrays": encoder.arrays})
        return
    digest.update(json.dumps(encoded, sort_keys=True, default=str).encode())
