"""Portable prognosis bundles: a fitted pipeline saved as arrays (safetensors) + structure (JSON).

A bundle is a folder of three files::

    models/NAME/bundle.json         structure: schema version, software versions, the object tree
    models/NAME/bundle.safetensors  every numeric array of the fitted pipeline (float64 kept exact)
    models/NAME/card.json           model card: cohort name and hash, N, events, features, metrics
                                    with CIs, library versions, SHA-256 of the two bundle files

Nothing is pickled and nothing is unpickled. The object tree names classes only through
:data:`REGISTRY` (class name -> :class:`Serializer`): loading instantiates registered classes and
nothing else, so a bundle cannot make NBRisk import or run code (the same allow-list idea as
``skops.io``'s trusted types, without the dependency). Trees of forests and boosted models are
rebuilt from their ``Tree.__getstate__()`` arrays (nodes + values) through ``Tree.__setstate__``.

:func:`load_bundle` verifies the SHA-256 of both files against the card, the schema version and the
library versions the trees and estimators depend on, and refuses a pickle or a zip archive named
like a bundle file, each with a message naming the file and what was expected.

The registry is keyed by class name so that a renamed or split estimator class is one line to
re-point (``register("NewName", NewClass)``); :func:`registered_classes` lists what it covers.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError
from nbrisk_core.hashing import sha256_file
from nbrisk_core.jsonable import json_default

#: Layout version of ``bundle.json``; a bundle of another version is refused (refit it).
#: 2: a combination is a scikit-learn ``Pipeline(select, model)`` (was ``CombinationModel``), and an object
#: held twice (``PrognosisPipeline.imputer_`` is ``preprocessor_.imputer_``) is saved once, then referenced.
SCHEMA_VERSION = 2
BUNDLE_KIND = "nbrisk-prognosis-bundle"
STRUCTURE_FILE = "bundle.json"
ARRAYS_FILE = "bundle.safetensors"
CARD_FILE = "card.json"
#: A copy of the bundle's nomogram for other tools (the bundle's own copy is inside bundle.json).
NOMOGRAM_FILE = "nomogram.json"
#: package -> how much of its version must match between the saving and the loading environment
#: ("minor": major.minor, "major"): trees' node layout and estimators' attributes change between
#: scikit-learn / scikit-survival minor releases, numpy's array layout only between majors.
VERSION_POLICY: dict[str, str] = {"scikit-learn": "minor", "scikit-survival": "minor", "numpy": "major"}
#: the first bytes of files a bundle must never be: pickles (protocol 2-5) and zip archives
#: (torch.save, joblib with compression)
_PICKLE_MAGIC = tuple(bytes([0x80, p]) for p in range(2, 6))
_ZIP_MAGIC = b"PK\x03\x04"


# --------------------------------------------------------------------------------------------
# the registry of classes a bundle may contain
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Serializer:
    """How one class is written and rebuilt: ``to_state(obj) -> dict``, ``from_state(dict) -> obj``."""

    cls: type
    to_state: Callable[[Any], dict]
    from_state: Callable[[dict], Any]


#: class name -> Serializer. Only these classes can be in a bundle, and only these are rebuilt.
REGISTRY: dict[str, Serializer] = {}


def _attributes_to_state(skip: tuple[str, ...]):
    def to_state(obj) -> dict:
        return {k: v for k, v in vars(obj).items() if k not in skip}
    return to_state


def _attributes_from_state(cls: type):
    def from_state(state: dict):
        obj = cls.__new__(cls)
        obj.__dict__.update(state)
        return obj
    return from_state


def register(name: str, cls: type, to_state=None, from_state=None, *, skip: tuple[str, ...] = ()) -> None:
    """Allow ``cls`` in bundles under ``name``.

    By default its instance attributes (``vars(obj)``, less ``skip``) are saved and set back on an
    instance made without calling ``__init__`` (fitted scikit-learn estimators are plain attribute
    bags). Give ``to_state``/``from_state`` for classes with C-level state (trees, random states).
    """
    REGISTRY[name] = Serializer(cls, to_state or _attributes_to_state(skip),
                                from_state or _attributes_from_state(cls))


def _tree_to_state(tree) -> dict:
    constructor_args = tree.__reduce__()[1]          # (n_features, n_classes, n_outputs)
    state = tree.__getstate__()
    return {"n_features": int(constructor_args[0]), "n_classes": np.asarray(constructor_args[1]),
            "n_outputs": int(constructor_args[2]), "max_depth": int(state["max_depth"]),
            "node_count": int(state["node_count"]), "nodes": state["nodes"], "values": state["values"]}


def _tree_from_state(state: dict):
    from sklearn.tree._tree import Tree

    n_classes = np.asarray(state["n_classes"], dtype=np.intp)
    tree = Tree(int(state["n_features"]), n_classes, int(state["n_outputs"]))
    nodes = state["nodes"]
    expected = tree.__getstate__()["nodes"].dtype   # this scikit-learn's node layout
    if nodes.dtype.names != expected.names:
        raise InputError(f"bundle: a tree's node fields {nodes.dtype.names} differ from this scikit-learn's "
                         f"{expected.names}; refit the bundle with this installation")
    converted = np.zeros(nodes.shape, dtype=expected)
    for field in expected.names:
        converted[field] = nodes[field]
    tree.__setstate__({"max_depth": state["max_depth"], "node_count": state["node_count"], "nodes": converted,
                       "values": np.ascontiguousarray(state["values"], dtype=np.float64)})
    return tree


def _random_state_to_state(random_state) -> dict:
    name, keys, position, has_gauss, cached = random_state.get_state()
    return {"name": name, "keys": keys, "position": int(position), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached)}


def _random_state_from_state(state: dict):
    random_state = np.random.RandomState()
    random_state.set_state((state["name"], np.asarray(state["keys"], dtype=np.uint32), state["position"],
                            state["has_gauss"], state["cached_gaussian"]))
    return random_state


def _register_defaults() -> None:
    from sklearn._loss.link import IdentityLink, Interval
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeRegressor
    from sklearn.tree._tree import Tree
    from sksurv.ensemble import (ComponentwiseGradientBoostingSurvivalAnalysis,
                                 GradientBoostingSurvivalAnalysis)
    from sksurv.ensemble.boosting import _ComponentwiseLeastSquares
    from sksurv.ensemble.survival_loss import CoxPH
    from sksurv.functions import StepFunction
    from sksurv.linear_model.coxph import BreslowEstimator
    from sksurv.tree import SurvivalTree

    from nbrisk_core.prognosis import estimators as est
    from nbrisk_core.prognosis.impute import MICEPMMImputer
    from nbrisk_core.prognosis.pipeline import BaselineLassoCox, CohortPreprocessor, PrognosisPipeline

    # the grid's estimators (nbrisk_core.prognosis.estimators) and the "select" step of a combination:
    # one line each to re-point after a rename
    for cls in (est.StepwiseCox, est.CoxnetCV, est.RidgeCoxCV, est.CoxBoostCV, est.GBMCoxCV, est.PLSCox,
                est.SuperPC, est.MinimalDepthRSF, est.SelectedFeatures):
        register(cls.__name__, cls)
    # the optimiser's result (scipy OptimizeResult) is a diagnostic, not needed to predict
    register("RankingSurvivalSVM", est.RankingSurvivalSVM, skip=("optimizer_result_",))
    # a fitted combination: Pipeline([("select", SelectedFeatures | "passthrough"), ("model", ...)]); its
    # state is its parameters (``steps``: a list of (name, estimator) tuples, kept as list and tuples)
    register("Pipeline", Pipeline)
    # the prognosis pipeline around them
    for cls in (CohortPreprocessor, MICEPMMImputer, BaselineLassoCox, PrognosisPipeline):
        register(cls.__name__, cls)
    # scikit-learn / scikit-survival pieces inside the fitted estimators
    for cls in (StandardScaler, BreslowEstimator, StepFunction, SurvivalTree, DecisionTreeRegressor,
                GradientBoostingSurvivalAnalysis, ComponentwiseGradientBoostingSurvivalAnalysis,
                _ComponentwiseLeastSquares, CoxPH, IdentityLink, Interval):
        register(cls.__name__, cls)
    register("Tree", Tree, _tree_to_state, _tree_from_state)
    register("RandomState", np.random.RandomState, _random_state_to_state, _random_state_from_state)


def registered_classes() -> dict[str, str]:
    """``{name: module.qualname}`` of every class a bundle may hold."""
    _ensure_registry()
    return {name: f"{s.cls.__module__}.{s.cls.__qualname__}" for name, s in sorted(REGISTRY.items())}


def _ensure_registry() -> None:
    if not REGISTRY:
        _register_defaults()


# --------------------------------------------------------------------------------------------
# encoding: Python objects -> JSON nodes + a dict of arrays
# --------------------------------------------------------------------------------------------

_SAFETENSORS_KINDS = "biuf"   # bool, signed, unsigned, float: what safetensors stores


def _float_node(value: float):
    if math.isfinite(value):
        return value
    return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self._name_of: dict[type, str] = {s.cls: name for name, s in REGISTRY.items()}
        # registered objects already written: id -> their number (a second occurrence is a "$ref")
        self._numbers: dict[int, int] = {}
        self._in_progress: set[int] = set()
        self._keep: list = []   # keeps every numbered object alive, so that no id is reused meanwhile

    def _array(self, array: np.ndarray, where: str):
        if array.dtype.names:   # structured (tree nodes): one array per field
            dtype = array.dtype
            layout = {"names": list(dtype.names), "formats": [dtype.fields[n][0].str for n in dtype.names],
                      "offsets": [int(dtype.fields[n][1]) for n in dtype.names],
                      "itemsize": int(dtype.itemsize)}
            return {"$struct": layout,
                    "fields": {n: self.encode(np.ascontiguousarray(array[n]), f"{where}.{n}")
                                                  for n in dtype.names}}
        if array.dtype.kind in _SAFETENSORS_KINDS and array.dtype.itemsize <= 8:
            key = f"a{len(self.arrays)}"
            self.arrays[key] = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False))
            return {"$array": key}
        if array.dtype.kind in "US":
            return {"$strings": list(array.shape), "dtype": array.dtype.str, "items": array.ravel().tolist()}
        if array.dtype.kind == "O":
            return {"$objects": list(array.shape),
                    "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(array.ravel())]}
        raise InputError(f"bundle: {where}: arrays of dtype {array.dtype} cannot be saved")

    def _index(self, index: pd.Index, where: str):
        if isinstance(index, pd.RangeIndex):
            return {"$range": [index.start, index.stop, index.step], "name": index.name}
        return {"$index": self._array(index.to_numpy(), where), "dtype": str(index.dtype), "name": index.name}

    def encode(self, value, where: str = "root"):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.generic):
            return {"$scalar": value.dtype.str, "value": self.encode(value.item(), where)}
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return _float_node(value)
        # exact types only: a list or tuple subclass (a namedtuple...) would come back as its base class
        if type(value) is list:
            return {"$list": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if type(value) is tuple:
            return {"$tuple": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, dict) and type(value) is dict:
            if all(isinstance(k, str) for k in value):
                return {"$dict": {k: self.encode(v, f"{where}.{k}") for k, v in value.items()}}
            return {"$items": [[self.encode(k, where), self.encode(v, f"{where}[{k!r}]")]
                               for k, v in value.items()]}
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if isinstance(value, pd.DataFrame):
            return {"$dataframe": {
                "columns": self.encode(list(value.columns), f"{where}.columns"),
                "index": self._index(value.index, f"{where}.index"),
                "dtypes": [str(d) for d in value.dtypes],
                "data": [self._array(value.iloc[:, i].to_numpy(), f"{where}.{c}")
                         for i, c in enumerate(value.columns)],
                "attrs": self.encode(dict(value.attrs), f"{where}.attrs")}}
        if isinstance(value, pd.Series):
            return {"$series": {"name": self.encode(value.name, where), "dtype": str(value.dtype),
                                "index": self._index(value.index, f"{where}.index"),
                                "data": self._array(value.to_numpy(), where)}}
        name = self._name_of.get(type(value))
        if name is None:
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            raise InputError(f"bundle: {where}: a {kind} cannot be "
                             "saved (not in nbrisk_core.prognosis.bundle.REGISTRY)")
        key = id(value)
        if key in self._in_progress:
            raise InputError(f"bundle: {where}: a {name} contains itself; cannot be saved")
        if key in self._numbers:   # the same object again (e.g. PrognosisPipeline.imputer_): a reference
            return {"$ref": self._numbers[key]}
        number = self._numbers[key] = len(self._numbers)
        self._keep.append(value)
        self._in_progress.add(key)
        state = REGISTRY[name].to_state(value)
        node = {"$object": name, "$id": number, "state": self.encode(state, f"{where}<{name}>")}
        self._in_progress.discard(key)
        return node


# --------------------------------------------------------------------------------------------
# decoding: JSON nodes + arrays -> Python objects (registered classes only)
# --------------------------------------------------------------------------------------------


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray], source: str):
        self.arrays = arrays
        self.source = source
        self.objects: dict[int, Any] = {}   # "$id" -> the object built, for "$ref" nodes

    def _bad(self, what: str):
        return InputError(f"{self.source}: {what}; the bundle is damaged or was not written by NBRisk")

    def _array(self, node):
        if not isinstance(node, dict):
            raise self._bad(f"expected an array node, got {type(node).__name__}")
        if "$array" in node:
            key = node["$array"]
            if key not in self.arrays:
                raise self._bad(f"array {key!r} is missing from {ARRAYS_FILE}")
            return self.arrays[key]
        if "$struct" in node:
            layout = node["$struct"]
            dtype = np.dtype({"names": layout["names"], "formats": layout["formats"],
                              "offsets": layout["offsets"], "itemsize": layout["itemsize"]})
            fields = {n: self._array(node["fields"][n]) for n in layout["names"]}
            shape = next(iter(fields.values())).shape if fields else (0,)
            out = np.zeros(shape, dtype=dtype)
            for n, values in fields.items():
                out[n] = values
            return out
        if "$strings" in node:
            return np.array(node["items"], dtype=np.dtype(node["dtype"])).reshape(node["$strings"])
        if "$objects" in node:
            out = np.empty(len(node["items"]), dtype=object)
            for i, item in enumerate(node["items"]):
                out[i] = self.decode(item)
            return out.reshape(node["$objects"])
        raise self._bad(f"unknown array node with keys {sorted(node)[:3]}")

    def _index(self, node) -> pd.Index:
        if "$range" in node:
            start, stop, step = node["$range"]
            return pd.RangeIndex(start, stop, step, name=node.get("name"))
        return pd.Index(self._array(node["$index"]), dtype=node["dtype"], name=node.get("name"))

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):   # only produced inside $-nodes
            raise self._bad("unexpected bare list")
        if not isinstance(node, dict) or len(node) == 0:
            raise self._bad(f"unexpected node {str(node)[:40]!r}")
        if "$float" in node:
            return float(node["$float"])
        if "$scalar" in node:
            return np.dtype(node["$scalar"]).type(self.decode(node["value"]))
        if "$list" in node:
            return [self.decode(v) for v in node["$list"]]
        if "$tuple" in node:
            return tuple(self.decode(v) for v in node["$tuple"])
        if "$dict" in node:
            return {k: self.decode(v) for k, v in node["$dict"].items()}
        if "$items" in node:
            return {self.decode(k): self.decode(v) for k, v in node["$items"]}
        if "$dataframe" in node:
            spec = node["$dataframe"]
            columns = self.decode(spec["columns"])
            data = {i: pd.Series(self._array(d), dtype=t, copy=True)
                    for i, (d, t) in enumerate(zip(spec["data"], spec["dtypes"]))}
            frame = pd.DataFrame(data)
            frame.columns = columns
            frame.index = self._index(spec["index"])
            frame.attrs.update(self.decode(spec["attrs"]))
            return frame
        if "$series" in node:
            spec = node["$series"]
            return pd.Series(self._array(spec["data"]), dtype=spec["dtype"], index=self._index(spec["index"]),
                             name=self.decode(spec["name"]), copy=True)
        if "$object" in node:
            name = node["$object"]
            if name not in REGISTRY:
                raise InputError(f"{self.source}: class {name!r} is not an allowed bundle class (allowed: "
                                 f"{', '.join(sorted(REGISTRY))}); refusing to build it")
            state = self.decode(node["state"])
            if not isinstance(state, dict):
                raise self._bad(f"the state of a {name} is not a mapping")
            obj = REGISTRY[name].from_state(state)
            number = node.get("$id")
            if number is not None:
                if not isinstance(number, int) or number in self.objects:
                    raise self._bad(f"object number {number!r} of a {name} is not new")
                self.objects[number] = obj
            return obj
        if "$ref" in node:
            number = node["$ref"]
            if not isinstance(number, int) or number not in self.objects:
                raise self._bad(f"reference {number!r} names no object before it")
            return self.objects[number]
        if any(k in node for k in ("$array", "$struct", "$strings", "$objects")):
            return self._array(node)
        raise self._bad(f"unknown node with keys {sorted(node)[:3]}")


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def software_versions() -> dict:
    """Versions of the packages a bundle's objects depend on (and Python's)."""
    import importlib.metadata as md
    import platform

    versions = {"python": platform.python_version()}
    for package in ("nbrisk", "numpy", "pandas", "scipy", "scikit-learn", "scikit-survival", "lifelines",
                    "safetensors"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    return versions


def _clean_json(value):
    """NaN/inf -> None, numpy scalars -> Python (a card is plain JSON)."""
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_object(obj, out_dir, *, card: dict | None = None, extra_structure: dict | None = None) -> dict:
    """Write ``obj`` (any registered object, or a dict/list of them) as a bundle folder; returns the card.

    ``card`` is merged into the model card, which gains ``schema_version``, ``software``, ``files``
    (name -> SHA-256) and ``sha256`` (of the two bundle files together).
    """
    from safetensors.numpy import save_file

    _ensure_registry()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; a bundle is a folder (bundle.json, "
                         "bundle.safetensors, card.json)", source=str(out))
    out.mkdir(parents=True, exist_ok=True)
    encoder = _Encoder()
    root = encoder.encode(obj)
    software = software_versions()
    structure = {"kind": BUNDLE_KIND, "schema_version": SCHEMA_VERSION, "software": software,
                 **(extra_structure or {}), "root": root}
    (out / STRUCTURE_FILE).write_text(json.dumps(structure, separators=(",", ":"), allow_nan=False))
    save_file(encoder.arrays, str(out / ARRAYS_FILE),
              metadata={"kind": BUNDLE_KIND, "schema_version": str(SCHEMA_VERSION)})
    files = {name: sha256_file(out / name) for name in (STRUCTURE_FILE, ARRAYS_FILE)}
    full = {"kind": BUNDLE_KIND, "schema_version": SCHEMA_VERSION, **(card or {}), "software": software,
            "files": files,
            "sha256": hashlib.sha256((files[STRUCTURE_FILE] + files[ARRAYS_FILE]).encode()).hexdigest(),
            "bundle_bytes": int(sum((out / n).stat().st_size for n in files))}
    (out / CARD_FILE).write_text(json.dumps(_clean_json(full), indent=2, default=json_default) + "\n")
    return full


def _refuse_foreign_file(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head[:2] in _PICKLE_MAGIC:
        raise InputError(f"{path}: is a Python pickle, not an NBRisk bundle file; NBRisk never unpickles "
                         "(a pickle can run any code when loaded). Refit with 'nbrisk prognosis fit'",
                         source=str(path))
    if head == _ZIP_MAGIC:
        raise InputError(f"{path}: is a zip archive (torch.save / joblib?), not an NBRisk bundle file; "
                         "expected bundle.json + bundle.safetensors + card.json", source=str(path))


def read_card(bundle_dir) -> dict:
    """The model card of a bundle folder (InputError naming the file when missing or invalid)."""
    path = Path(bundle_dir)
    if path.is_file():
        _refuse_foreign_file(path)
        raise InputError(f"{path}: a prognosis bundle is a folder (bundle.json, bundle.safetensors, "
                         "card.json), "
                         "not a single file", source=str(path))
    if not path.is_dir():
        raise InputError(f"{path}: prognosis bundle not found (make one with "
                         "'nbrisk prognosis fit --cohort DIR "
                         f"--out {path}')", source=str(path))
    card_path = path / CARD_FILE
    if not card_path.is_file():
        raise InputError(f"{card_path}: missing; {path} is not a prognosis bundle "
                         f"(expected {STRUCTURE_FILE}, "
                         f"{ARRAYS_FILE}, {CARD_FILE})", source=str(card_path))
    _refuse_foreign_file(card_path)
    try:
        card = json.loads(card_path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"{card_path}: not valid JSON ({error})", source=str(card_path)) from None
    if not isinstance(card, dict) or card.get("kind") != BUNDLE_KIND:
        raise InputError(f"{card_path}: not a prognosis bundle card (kind = "
                         f"{card.get('kind') if isinstance(card, dict) else None!r}, "
                         f"expected {BUNDLE_KIND!r})",
                         source=str(card_path))
    files = card.get("files")
    if not isinstance(files, dict) or set(files) != {STRUCTURE_FILE, ARRAYS_FILE}:
        raise InputError(f"{card_path}: 'files' must give the SHA-256 of {STRUCTURE_FILE} and {ARRAYS_FILE}",
                         source=str(card_path))
    return card


def _version_problems(saved: dict) -> list[str]:
    installed = software_versions()
    problems = []
    for package, level in VERSION_POLICY.items():
        was, now = saved.get(package), installed.get(package)
        if was is None or now is None:
            continue
        parts = 2 if level == "minor" else 1
        if was.split(".")[:parts] != now.split(".")[:parts]:
            problems.append(f"{package} {was} (bundle) vs {now} (installed)")
    return problems


@dataclass
class LoadedBundle:
    """A verified bundle: the object it holds, its card and where it came from."""

    obj: Any
    card: dict
    structure: dict
    path: Path

    @property
    def sha256(self) -> str:
        return self.card["sha256"]


def load_bundle(bundle_dir) -> LoadedBundle:
    """Load and verify a bundle folder.

    Raises
    ------
    InputError
        A file is missing, is a pickle or a zip archive, its SHA-256 differs from the card (one
        flipped byte), the schema version is not :data:`SCHEMA_VERSION`, the bundle was written with
        an incompatible scikit-learn / scikit-survival / numpy (:data:`VERSION_POLICY`), or the
        structure names a class outside :data:`REGISTRY`.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    _ensure_registry()
    path = Path(bundle_dir)
    card = read_card(path)
    for name in (STRUCTURE_FILE, ARRAYS_FILE):
        file = path / name
        if not file.is_file():
            raise InputError(f"{file}: missing file of the prognosis bundle", source=str(file))
        _refuse_foreign_file(file)
        actual = sha256_file(file)
        if actual != card["files"][name]:
            raise InputError(f"{file}: SHA-256 {actual[:16]}... does not match the card's "
                             f"{str(card['files'][name])[:16]}...; the file was changed, truncated or "
                             "corrupted: refusing it", source=str(file))
    try:
        structure = json.loads((path / STRUCTURE_FILE).read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"{path / STRUCTURE_FILE}: not valid JSON ({error})") from None
    if not isinstance(structure, dict) or structure.get("kind") != BUNDLE_KIND:
        raise InputError(f"{path / STRUCTURE_FILE}: not an NBRisk prognosis bundle (kind = "
                         f"{structure.get('kind') if isinstance(structure, dict) else None!r})")
    version = structure.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(f"{path / STRUCTURE_FILE}: schema_version = {version!r} is not supported "
                         "(this NBRisk "
                         f"reads schema version {SCHEMA_VERSION}); refit with 'nbrisk prognosis fit'",
                         source=str(path / STRUCTURE_FILE))
    problems = _version_problems(structure.get("software") or {})
    if problems:
        raise InputError(f"{path}: the bundle was written with other library versions "
                         f"({'; '.join(problems)}); "
                         "its trees and estimators may not load the same: refit it with this installation, "
                         "or install the versions it names", source=str(path))
    try:
        arrays = load_file(str(path / ARRAYS_FILE))
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{path / ARRAYS_FILE}: not a readable safetensors file ({error})") from None
    obj = _Decoder(arrays, str(path / STRUCTURE_FILE)).decode(structure.get("root"))
    return LoadedBundle(obj=obj, card=card, structure=structure, path=path)


# --------------------------------------------------------------------------------------------
# the prognosis pipeline as a bundle
# --------------------------------------------------------------------------------------------

#: Resamples of the bootstrap CI of the C-index on the model card.
CARD_BOOTSTRAP = 500


def bootstrap_c_index(event, time, risk, n_bootstrap: int = CARD_BOOTSTRAP, seed: int = 2025) -> list:
    """``[c, low, high]``: Harrell's C with a percentile bootstrap 95 % CI (resampling patients), the
    engine's :func:`~nbrisk_core.prognosis.evaluation.concordance_with_ci` as JSON; ``None`` where it
    cannot be computed (no death, no comparable pair, fewer than 20 usable resamples)."""
    from nbrisk_core.prognosis.evaluation import concordance_with_ci

    event = np.asarray(event, dtype=int)
    if not event.any():
        return [None, None, None]
    try:
        result = concordance_with_ci(event, time, risk, n_bootstrap=n_bootstrap, seed=seed)
    except InputError:   # no comparable pair
        return [None, None, None]
    return [float(result.value), *(None if math.isnan(v) else float(v) for v in (result.low, result.high))]


def km_by_group(patients: pd.DataFrame) -> pd.DataFrame:
    """Kaplan-Meier of each MLRS group of each cohort.

    Columns ``cohort, group, time, survival, low, high, at_risk``.
    """
    from nbrisk_core.prognosis.metrics import kaplan_meier

    frames = []
    for (cohort, group), part in patients.groupby(["cohort", "mlrs_group"]):
        km = kaplan_meier(part["event"], part["time"])
        frames.append(km.assign(cohort=cohort, group=group)[["cohort", "group", "time", "survival", "low",
                                                             "high", "at_risk"]])
    return pd.concat(frames, ignore_index=True)


def pipeline_card(pipeline, *, cohort_dir=None, embeddings: dict | None = None) -> dict:
    """Model card fields of a fitted prognosis pipeline (metrics with their CIs)."""
    from nbrisk_core.cohort.format import cohort_hash

    patients = pipeline.patients_
    metrics = {}
    for cohort, part in patients.groupby("cohort"):
        metrics[cohort] = {
            "n": int(len(part)), "events": int(part["event"].sum()),
            "c_index": bootstrap_c_index(part["event"], part["time"], part["mlrs"]),
            "logrank_p": pipeline.summary_["logrank_p"].get(cohort),
            "td_auc": pipeline.summary_["td_auc"].get(cohort)}
    config = pipeline.config_
    card = {
        "created_by": "nbrisk prognosis fit",
        "cohort": {"name": config.get("cohort_name"), "synthetic": config.get("synthetic"),
                   "sha256": cohort_hash(Path(cohort_dir)) if cohort_dir is not None else None,
                   "path": str(cohort_dir) if cohort_dir is not None else None},
        "n_patients": int(len(patients)), "events": int(patients["event"].sum()),
        "n_train": config.get("n_train"), "n_test": config.get("n_test"),
        "feature_set": config.get("feature_set"), "candidate_features": config.get("candidate_columns"),
        "features": list(pipeline.features_), "selected": pipeline.selected_, "grid": config.get("grid"),
        "selection_rule": config.get("selection_rule"), "seed": config.get("seed"),
        "mlrs_cutoff": float(pipeline.cutoff_),
        "metrics": metrics,
        "metrics_note": "C-index 95 % CI: percentile bootstrap of patients "
                        f"({CARD_BOOTSTRAP} resamples); td-AUC [value, low, high] with the pipeline's "
                        "Clopper-Pearson interval; the testing C-index is optimistic when the selection rule "
                        "looks at the testing cohort (paper's 'mean' rule)",
        "baseline_lasso_cox": {"c_index_train": pipeline.baseline_.c_index_train_,
                               "c_index_test": pipeline.baseline_.c_index_test_},
        "embeddings": embeddings or {"source": "none" if not pipeline.ct_columns_ else "unknown"},
        "notes": list(pipeline.notes_),
        "pipeline_fit_sha256": pipeline.fit_sha256(),
    }
    return card


def save_pipeline(pipeline, out_dir, *, cohort_dir=None, clinical: pd.DataFrame | None = None,
                  embeddings: dict | None = None, created_by: str | None = None) -> dict:
    """Write a fitted :class:`~nbrisk_core.prognosis.pipeline.PrognosisPipeline` as a bundle.

    Returns the card.

    The bundle holds the pipeline (encoded columns, imputer with its training donors, scaler,
    screening table, selected combination with its fitted predictor and selected columns, MLRS
    cut-off, baseline LASSO-Cox), the training cohort's KM by MLRS group and, when ``clinical``
    (the raw training cohort table) is given, its case-mix summary for external validation.

    Parameters
    ----------
    embeddings : dict, optional
        Where the CT features came from: ``{"source": "classifier", "model_sha256": ...}``,
        ``{"source": "stand-in", ...}``, ``{"source": "file", "path": ...}``, ``{"source": "none"}`` or
        ``{"source": "radiomics", "rad_score": {...}, "rad_score_sha256": ...}`` (the frozen rad-score of
        :mod:`nbrisk_core.radiomics.score`, fitted on the training patients; ``nbrisk validate`` applies it
        to another cohort's cached radiomics).
    """
    from nbrisk_core.validation.case_mix import describe_cohort

    development = None
    if clinical is not None:
        ids = pipeline.patients_.loc[pipeline.patients_["cohort"] == "train", "patient_id"]
        train = clinical.set_index(clinical["patient_id"].astype(str)).loc[ids].reset_index(drop=True)
        train_patients = pipeline.patients_[pipeline.patients_["cohort"] == "train"]
        development = describe_cohort(train, mlrs=train_patients["mlrs"].to_numpy())
    root = {"pipeline": pipeline, "km_by_group": km_by_group(pipeline.patients_),
            "development_case_mix": development, "embeddings": embeddings or {}}
    card = pipeline_card(pipeline, cohort_dir=cohort_dir, embeddings=embeddings)
    nomogram_text = None
    if clinical is not None:
        # the nomogram (MLRS + default clinical variables) as plain JSON inside bundle.json, so the bundle's
        # SHA-256 covers it; nomogram.json beside the bundle is a copy for other tools (its SHA on the card)
        from nbrisk_core.prognosis.nomogram import available_covariates, nomogram_for_pipeline

        covariates = available_covariates(clinical)
        try:
            nomogram = nomogram_for_pipeline(pipeline, clinical, covariates, cohort_dir=cohort_dir)
        except InputError as error:
            card["nomogram"] = {"file": None, "note": f"not fitted: {error}"}
        else:
            root["nomogram"] = nomogram.to_dict()
            nomogram_text = nomogram.to_json() + "\n"
            card["nomogram"] = {"file": NOMOGRAM_FILE,
                                "sha256": hashlib.sha256(nomogram_text.encode()).hexdigest(),
                                "predictors": list(nomogram.names), "in_bundle": True}
    if created_by:
        card["created_by"] = created_by
    full = save_object(root, out_dir, card=card)
    stale = Path(out_dir) / NOMOGRAM_FILE
    if nomogram_text is not None:
        stale.write_text(nomogram_text)
    elif stale.exists():
        stale.unlink()
    return full


@dataclass
class PrognosisBundle:
    """A loaded, verified prognosis bundle: the pipeline and what was saved with it."""

    pipeline: Any
    card: dict
    km_by_group: pd.DataFrame
    development_case_mix: dict | None
    embeddings: dict
    path: Path
    #: the nomogram fitted with the bundle (:class:`~nbrisk_core.prognosis.nomogram.Nomogram`); None in
    #: bundles written before nomograms existed
    nomogram: Any = None

    @property
    def sha256(self) -> str:
        return self.card["sha256"]


def load_pipeline(bundle_dir) -> PrognosisBundle:
    """Load a prognosis bundle written by :func:`save_pipeline` (verified as :func:`load_bundle`)."""
    from nbrisk_core.prognosis.pipeline import PrognosisPipeline

    loaded = load_bundle(bundle_dir)
    root = loaded.obj
    if not isinstance(root, dict) or not isinstance(root.get("pipeline"), PrognosisPipeline):
        raise InputError(f"{loaded.path}: the bundle holds no prognosis pipeline (expected one written by "
                         "'nbrisk prognosis fit')", source=str(loaded.path))
    nomogram = None
    if root.get("nomogram") is not None:
        from nbrisk_core.prognosis.nomogram import Nomogram

        nomogram = Nomogram.from_dict(root["nomogram"], source=f"{loaded.path / STRUCTURE_FILE} (nomogram)")
    return PrognosisBundle(pipeline=root["pipeline"], card=loaded.card, km_by_group=root["km_by_group"],
                           development_case_mix=root.get("development_case_mix"),
                           embeddings=root.get("embeddings") or {}, path=loaded.path, nomogram=nomogram)


def find_cohort_bundle(cohort_dir, models_dir=None) -> Path | None:
    """The newest bundle in the cohort's models folder fitted on exactly this cohort (same hash), or None.

    Looks in ``<models>/*/card.json`` (:func:`nbrisk_core.config.cohort_models_dir`); only the card is
    read here (cheap); :func:`load_pipeline` verifies the bundle itself.
    """
    from nbrisk_core.cohort.format import cohort_hash
    from nbrisk_core.config import cohort_models_dir

    folder = Path(models_dir) if models_dir is not None else cohort_models_dir(cohort_dir)
    cards = []
    for card_path in sorted(folder.glob(f"*/{CARD_FILE}")) if folder.is_dir() else []:
        try:
            card = json.loads(card_path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(card, dict) and card.get("kind") == BUNDLE_KIND:
            cards.append((card_path.stat().st_mtime, card_path.parent, card))
    if not cards:
        return None
    digest = cohort_hash(Path(cohort_dir))
    matching = [(mtime, path) for mtime, path, card in cards
                if (card.get("cohort") or {}).get("sha256") == digest]
    return max(matching)[1] if matching else None


def app_bundle(cohort_dir, selected: str | None = None, *, classifier_sha256=None) -> PrognosisBundle | None:
    """The cohort's bundle for the dashboard (:class:`PrognosisBundle`, verified), or None to fit as before.

    Used only when the bundle was fitted on this very cohort (hash), with the combination ``selected``
    when one is asked for, and on the CT features the app uses: a clinical-only bundle, or one fitted on
    the embeddings of the classifier whose SHA-256 is ``classifier_sha256`` (the caller's shipped model;
    prognosis does not read classifiers). ``classifier_sha256`` may be a function of no argument, called
    only when a classifier bundle is found.
    """
    path = find_cohort_bundle(cohort_dir)
    if path is None:
        return None
    bundle = load_pipeline(path)
    if selected is not None and bundle.pipeline.selected_ != selected:
        return None
    source = bundle.embeddings.get("source")
    if source == "none":
        return bundle
    if source == "classifier":
        actual = classifier_sha256() if callable(classifier_sha256) else classifier_sha256
        if actual is not None and actual == bundle.embeddings.get("model_sha256"):
            return bundle
    return None


def app_bundle_pipeline(cohort_dir, selected: str | None = None, *, classifier_sha256=None):
    """The pipeline of :func:`app_bundle` (None: no matching bundle, fit one as before)."""
    bundle = app_bundle(cohort_dir, selected, classifier_sha256=classifier_sha256)
    return None if bundle is None else bundle.pipeline


def predict_from_labs(embedding, labs_path, bundle_dir) -> dict:
    """``nbrisk predict --labs FILE --prognosis BUNDLE``: the individual prognosis from a frozen bundle."""
    from nbrisk_core.prognosis.validation import validate_clinical

    labs = validate_clinical(labs_path, require=False)
    if len(labs) != 1:
        raise InputError(f"{Path(labs_path).name}: expected the values of one patient, got {len(labs)} rows")
    bundle = load_pipeline(bundle_dir)
    if bundle.embeddings.get("source") == "radiomics":
        raise InputError(f"{bundle_dir}: this bundle was fitted on radiomics features (the rad-score of the "
                         "tumour on the chosen slice), which need the tumour mask; 'nbrisk predict' reads "
                         "images without one. Score a cohort with chosen slices and masks instead: "
                         f"'nbrisk validate --bundle {bundle_dir} --cohort DIR' (after 'nbrisk radiomics "
                         "--cohort DIR --out DIR/radiomics.parquet')")
    result = bundle.pipeline.predict_patient(embedding, labs).to_dict()
    result["bundle"] = str(bundle.path)
    result["bundle_sha256"] = bundle.sha256
    result["cohort"] = (bundle.card.get("cohort") or {}).get("name")
    result["synthetic"] = bool((bundle.card.get("cohort") or {}).get("synthetic", False))
    return result


#: where :func:`publish_pipeline` keeps replaced bundles and writes new ones before their rename (inside the
#: models folder, two levels down: :func:`find_cohort_bundle` looks only at ``<models>/*/card.json``)
BACKUP_FOLDER = "backups"
INCOMING_FOLDER = ".incoming"


@dataclass(frozen=True)
class PublishedBundle:
    """What :func:`publish_pipeline` did: the bundle's folder and card, and where the one it replaced went."""

    path: Path
    card: dict
    backup: Path | None

    @property
    def sha256(self) -> str:
        return self.card["sha256"]


def publish_pipeline(pipeline, cohort_dir, *, models_dir=None, name: str | None = None,
                     clinical: pd.DataFrame | None = None, embeddings: dict | None = None,
                     created_by: str = "nbrisk dashboard (Cohort page, full search)", now=None) -> PublishedBundle:
    """Write ``pipeline`` as the cohort's bundle, atomically, keeping the bundle it replaces as a dated backup.

    The bundle goes to ``<models>/<name>`` (``models`` default: the cohort's models folder,
    :func:`nbrisk_core.config.cohort_models_dir`; ``name`` default: the folder of the cohort's current bundle,
    :func:`find_cohort_bundle`, else ``prognosis_<cohort folder name>``). It is written completely into
    ``<models>/.incoming/`` first and verified (:func:`load_bundle`); then an existing ``<models>/<name>`` is
    renamed to ``<models>/backups/<name>-<UTC time>`` (kept, never loaded by the app) and the new folder renamed
    into place. A reader never sees a half-written bundle; between the two renames (same file system) the
    folder is briefly absent, and a failed second rename puts the old bundle back.
    """
    import datetime
    import shutil
    import tempfile

    from nbrisk_core.config import cohort_models_dir

    cohort_dir = Path(cohort_dir)
    folder = Path(models_dir) if models_dir is not None else cohort_models_dir(cohort_dir)
    if name is None:
        current = find_cohort_bundle(cohort_dir, folder)
        name = current.name if current is not None else f"prognosis_{cohort_dir.resolve().name}"
    if not name or name.startswith(".") or Path(name).name != name or name == BACKUP_FOLDER:
        raise InputError(f"bundle name {name!r}: expected a plain folder name (no path, not hidden, not "
                         f"{BACKUP_FOLDER!r})")
    incoming_root = folder / INCOMING_FOLDER
    incoming_root.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=incoming_root))
    try:
        card = save_pipeline(pipeline, incoming, cohort_dir=cohort_dir, clinical=clinical, embeddings=embeddings,
                             created_by=created_by)
        load_bundle(incoming)   # what was written reads back and verifies before it replaces anything
        target = folder / name
        backup = None
        if target.exists():
            stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
            backup = folder / BACKUP_FOLDER / f"{name}-{stamp}"
            backup.parent.mkdir(parents=True, exist_ok=True)
            target.rename(backup)
        try:
            incoming.rename(target)
        except OSError:
            if backup is not None:
                backup.rename(target)
            raise
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    return PublishedBundle(path=target, card=card, backup=backup)


def bundles_key(cohort_dir, models_dir=None) -> str:
    """A cheap fingerprint of the bundles in the cohort's models folder: the SHA-256 of every bundle card's
    ``sha256`` (with its folder name and the card's modification time).

    Reads only the small ``card.json`` files. It changes when a bundle is written, replaced or removed, so a
    cache keyed on it (the dashboard's :func:`nbrisk_ui.prognosis.get_pipeline`) loads the new bundle.
    """
    from nbrisk_core.config import cohort_models_dir

    folder = Path(models_dir) if models_dir is not None else cohort_models_dir(cohort_dir)
    parts = []
    for card_path in sorted(folder.glob(f"*/{CARD_FILE}")) if folder.is_dir() else []:
        try:
            card = json.loads(card_path.read_text())
            mtime = card_path.stat().st_mtime_ns
        except (OSError, ValueError):
            continue
        if isinstance(card, dict) and card.get("kind") == BUNDLE_KIND:
            parts.append(f"{card_path.parent.name}:{card.get('sha256')}:{mtime}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
