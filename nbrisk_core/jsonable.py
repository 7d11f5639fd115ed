"""``json.dumps(..., default=...)`` for the values NBRisk writes: numpy scalars and arrays, paths."""

from __future__ import annotations

from pathlib import PurePath

import numpy as np


def json_default(value):
    """numpy scalars -> Python numbers, arrays -> lists, paths -> strings; anything else is a TypeError.

    >>> import json
    >>> json.dumps({"n": np.int64(3), "x": np.array([0.5, 1.0]), "p": PurePath("a/b")}, default=json_default)
    '{"n": 3, "x": [0.5, 1.0], "p": "a/b"}'
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def json_default_or_str(value):
    """As :func:`json_default`, but any other value becomes its ``str()`` (reports that must always write).

    >>> import json, datetime
    >>> json.dumps([np.float32(0.5), datetime.date(2025, 1, 2)], default=json_default_or_str)
    '[0.5, "2025-01-02"]'
    """
    try:
        return json_default(value)
    except TypeError:
        return str(value)
