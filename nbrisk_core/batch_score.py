"""Batch scoring: every patient of a cohort through the classifier (and a frozen prognosis bundle).

``nbrisk score`` is the front end. The patients are cut into partitions of ``partition_size``; each
partition is one task (in this process, or a Dask future on a cluster) that loads the model once per
process, builds the model inputs with the classifier's one input builder
(:func:`nbrisk_core.classifier.data.cohort_model_inputs` for a cohort directory,
:meth:`DataConfig.model_input` per case for slices rendered on the fly), runs
:class:`~nbrisk_core.classifier.inference.Predictor` and, with a bundle, the frozen pipeline's
:meth:`predict_patient`, and writes its rows to ``<out>.parts/part-NNNNN.parquet`` (atomically: a
temporary file renamed). Only a small summary comes back to the caller, so the caller's memory does not
grow with the number of patients (the images of one partition are in memory at a time, per worker).

Resuming: ``<out>.parts/manifest.json`` records what the run scores (model and bundle SHA-256, the
cohort's clinical table SHA-256, the partition size). A rerun with the same inputs skips every partition
whose part file is there with the same patient list (its SHA-256 is in the part's metadata); a different
run refuses to mix its rows with those parts. When every part is written they are concatenated, part by
part, into ``<out>`` (a temporary file renamed) and the parts folder is removed.

Memory: the clinical table is read in chunks of one partition (a first pass counts the patients and
refuses a repeated ``patient_id``), tasks are built as they are handed out, and on Dask at most one
wave of 64 partitions is in flight; the caller keeps a summary of a few numbers per partition.

Output columns: ``patient_id``, ``p_high_risk``, ``risk_class`` (HR/NHR at the card's threshold),
``ct01``..``ct16`` (the embedding), and with a bundle ``mlrs``, ``mlrs_group`` (high/low against the
frozen training median) and ``n_imputed``. Patients without chosen slices are left out and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError
from nbrisk_core.hashing import sha256_file

EMBEDDING_COLUMNS: tuple[str, ...] = tuple(f"ct{i:02d}" for i in range(1, 17))
PART_PATTERN = "part-{:05d}.parquet"
MANIFEST = "manifest.json"
DEFAULT_PARTITION_SIZE = 256
#: images per forward pass: measured with the allocator tuned, Swin-T ran at 8.6 images/s per core at 8
#: and 7.7 at 16 (215,000 page faults per 48 images against 7; docs/scaling.md)
DEFAULT_BATCH_SIZE = 8
_META_KEY = b"nbrisk"

#: per-process caches, so a worker loads the model (and the bundle) once for all its partitions
_PREDICTORS: dict = {}
_BUNDLES: dict = {}


def parts_dir(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".parts")


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ids_digest(ids) -> str:
    return _sha256_bytes("\n".join(map(str, ids)).encode())


def _arrow_schema(with_prognosis: bool):
    import pyarrow as pa

    fields = [("patient_id", pa.string()), ("p_high_risk", pa.float64()), ("risk_class", pa.string())]
    fields += [(c, pa.float64()) for c in EMBEDDING_COLUMNS]
    if with_prognosis:
        fields += [("mlrs", pa.float64()), ("mlrs_group", pa.string()), ("n_imputed", pa.int64())]
    return pa.schema(fields)


def _predictor(model_path: str, threads: int):
    import torch

    from nbrisk_core.classifier.inference import Predictor
    from nbrisk_core.classifier.model_io import load_model

    from nbrisk_core.allocator import tune_for_inference

    if threads:
        torch.set_num_threads(max(1, int(threads)))
    tune_for_inference()  # a Dask worker's MALLOC_TRIM_THRESHOLD_ costs ~40 % of the rate (nbrisk_core.allocator)
    stat = os.stat(model_path)
    key = (os.path.realpath(model_path), stat.st_mtime_ns, stat.st_size)
    if key not in _PREDICTORS:
        _PREDICTORS.clear()
        _PREDICTORS[key] = Predictor(load_model(Path(model_path)))
    return _PREDICTORS[key]


def _bundle(bundle_path: str):
    from nbrisk_core.prognosis.bundle import load_pipeline

    key = os.path.realpath(bundle_path)
    if key not in _BUNDLES:
        _BUNDLES.clear()
        _BUNDLES[key] = load_pipeline(bundle_path)
    return _BUNDLES[key]


def _synthetic_inputs(card, source: dict, ids: list[str], numbers: list[int]) -> np.ndarray:
    """Render each patient's chosen slices with the demo generator and build the model input per case."""
    from nbrisk_core.demo.cohort import cohort_geometry, generate_cohort_tables
    from nbrisk_core.demo.render import render_slice

    table = generate_cohort_tables(int(source["n"]), int(source["seed"]))
    inputs = []
    for number in numbers:
        geom = cohort_geometry(table.iloc[number - 1], int(source["seed"]), number)
        slices = {phase: render_slice(geom, phase, geom.max_area_slice(phase))[0]
                  for phase in card.data.phases}
        inputs.append(card.data.model_input(slices))
    return np.stack(inputs).astype(np.float32) if inputs else np.empty((0, 3, 1, 1), np.float32)


def score_partition(task: dict) -> dict:
    """Score one partition and write its part file; returns a small summary (runs on a worker).

    ``task``: ``index``, ``ids``, ``clinical`` (records of these patients, for the bundle), ``source``
    (``{"kind": "cohort", "dir": ...}`` or ``{"kind": "synthetic", "n", "seed", "numbers"}``),
    ``model``, ``bundle`` (or None), ``part`` (path of the part file), ``meta``, ``threads``,
    ``batch_size``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nbrisk_core.classifier import CLASS_ORDER

    started = time.perf_counter()
    predictor = _predictor(task["model"], task.get("threads", 1))
    card = predictor.loaded.model_card
    loaded_at = time.perf_counter()
    ids = list(task["ids"])
    source = task["source"]
    skipped: list[str] = []
    if source["kind"] == "cohort":
        from nbrisk_core.classifier.data import cohort_model_inputs, usable_patients

        cohort_dir = Path(source["dir"])
        try:
            usable, _ = usable_patients(cohort_dir, pd.DataFrame({"patient_id": ids}), card.data.phases,
                                        labels=False)
            keep = list(usable["patient_id"])
        except InputError:  # none of this partition has slices
            keep = []
        skipped = [pid for pid in ids if pid not in set(keep)]
        x = cohort_model_inputs(cohort_dir, card.data, patient_ids=keep, labels=False)[1] if keep else None
    else:
        keep = ids
        x = _synthetic_inputs(card, source, ids, list(source["numbers"]))
    input_seconds = time.perf_counter() - loaded_at
    if keep:
        proba, embedding = predictor.predict_batches(x, int(task.get("batch_size", DEFAULT_BATCH_SIZE)))
        p_hr = proba[:, CLASS_ORDER.index("HR")].astype(np.float64)
    else:
        p_hr, embedding = np.empty(0), np.empty((0, len(EMBEDDING_COLUMNS)))
    del x
    frame = pd.DataFrame({"patient_id": pd.Series(keep, dtype=object), "p_high_risk": p_hr,
                          "risk_class": np.where(p_hr >= card.decision_threshold, "HR", "NHR")})
    for k, column in enumerate(EMBEDDING_COLUMNS):
        frame[column] = embedding[:, k].astype(np.float64)
    with_prognosis = bool(task.get("bundle"))
    if with_prognosis:
        pipeline = _bundle(task["bundle"]).pipeline
        clinical = {str(r["patient_id"]): r for r in task["clinical"]}
        mlrs, groups, imputed = [], [], []
        for pid, vector in zip(keep, embedding):
            values = {k: v for k, v in clinical[pid].items() if k != "patient_id"}
            result = pipeline.predict_patient(vector.astype(float), values)
            mlrs.append(result.mlrs)
            groups.append(result.group)
            imputed.append(len(result.imputed))
        frame["mlrs"] = np.asarray(mlrs, dtype=np.float64)
        frame["mlrs_group"] = pd.Series(groups, dtype=object)
        frame["n_imputed"] = np.asarray(imputed, dtype=np.int64)
    table = pa.Table.from_pandas(frame, schema=_arrow_schema(with_prognosis), preserve_index=False)
    meta = {**task["meta"], "ids_sha256": _ids_digest(ids), "skipped": skipped}
    table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    part = Path(task["part"])
    tmp = part.with_name(part.name + f".tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    tmp.replace(part)  # atomic: a part is either whole or absent
    return {"index": task["index"], "n": len(keep), "skipped": len(skipped),
            "seconds": time.perf_counter() - started, "model_load_seconds": loaded_at - started,
            "input_seconds": input_seconds, "worker": f"pid {os.getpid()}"}


def _part_done(part: Path, ids) -> bool:
    """True when ``part`` is a whole part file of exactly these patients."""
    import pyarrow.parquet as pq

    if not part.is_file():
        return False
    try:
        meta = json.loads((pq.read_schema(part).metadata or {}).get(_META_KEY, b"{}"))
    except Exception:  # noqa: BLE001 - a torn or foreign file is redone
        return False
    return meta.get("ids_sha256") == _ids_digest(ids)


@dataclass
class ScoreRun:
    """What one :func:`score_cohort` call did."""

    out: Path
    n_partitions: int
    done_before: int
    scored: int
    skipped: int
    seconds: float
    summaries: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"out": str(self.out), "partitions": self.n_partitions, "resumed_partitions": self.done_before,
                "patients_scored": self.scored, "patients_skipped": self.skipped, "seconds": self.seconds}


@dataclass
class Plan:
    """What to score: ``n_patients``, the ``source`` a worker reads slices from, a ``digest`` of the
    input (clinical table) and ``chunks(size)``: an iterator of ``(patient ids, clinical records or
    None)`` per partition, read as it goes (the whole table is never in memory)."""

    n_patients: int
    source: dict
    digest: str
    chunks: object


def _clinical_columns(columns) -> list[str]:
    from nbrisk_core.clinical.schema import CLINICAL_VARIABLES

    return ["patient_id"] + [v.name for v in CLINICAL_VARIABLES if v.name in columns]


def _records(table: pd.DataFrame) -> list[dict]:
    names = _clinical_columns(table.columns)
    return table[names].astype(object).where(table[names].notna(), None).to_dict("records")


def cohort_plan(cohort_dir, with_prognosis: bool) -> Plan:
    """The :class:`Plan` of a cohort directory: ``clinical.csv`` read in chunks (one pass here to count
    the patients, hash the file and refuse a repeated patient_id; one pass per run to cut partitions)."""
    cohort_dir = Path(cohort_dir)
    clinical_path = cohort_dir / "clinical.csv"
    if not clinical_path.is_file():
        raise InputError(f"{clinical_path}: not found (--cohort expects a cohort directory with clinical.csv "
                         "and slices/<patient_id>/: docs/cohort-format.md)", source=str(clinical_path))
    digest = sha256_file(clinical_path)
    header = pd.read_csv(clinical_path, nrows=0).columns
    if "patient_id" not in header:
        raise InputError(f"{clinical_path}: column 'patient_id' is missing", source=str(clinical_path))
    seen: set[str] = set()
    for chunk in pd.read_csv(clinical_path, usecols=["patient_id"], dtype={"patient_id": str},
                             chunksize=100_000):
        for pid in chunk["patient_id"].astype(str):
            if pid in seen:
                raise InputError(f"{clinical_path}: patient_id {pid!r} appears more than once "
                                 "(expected one row per patient)", source=str(clinical_path))
            seen.add(pid)
    n = len(seen)
    del seen

    def chunks(size: int):
        for table in pd.read_csv(clinical_path, dtype={"patient_id": str}, chunksize=size):
            ids = [str(i) for i in table["patient_id"]]
            yield ids, (_records(table) if with_prognosis else None)

    return Plan(n, {"kind": "cohort", "dir": str(cohort_dir.resolve())}, digest, chunks)


def synthetic_plan(n: int, seed: int = 2025) -> Plan:
    """The :class:`Plan` of ``n`` synthetic patients whose slices are rendered on the fly by the demo
    generator (benchmarks); their clinical values come from the generator's table."""
    from nbrisk_core.demo.cohort import generate_cohort_tables

    table = generate_cohort_tables(n, seed)

    def chunks(size: int):
        for start in range(0, n, size):
            part = table.iloc[start:start + size]
            yield list(part["patient_id"]), _records(part)

    return Plan(n, {"kind": "synthetic", "n": n, "seed": seed}, f"synthetic:{n}:{seed}", chunks)


def score_cohort(cohort_dir=None, model=None, out=None, *, bundle=None, backend: str = "local",
                 scheduler: str | None = None, workers: int = 2, partition_size: int = DEFAULT_PARTITION_SIZE,
                 threads: int = 1, batch_size: int = DEFAULT_BATCH_SIZE, progress=None, plan=None) -> ScoreRun:
    """Score every patient of ``cohort_dir`` into the parquet file ``out`` (see the module docstring).

    ``backend="dask"`` runs the partitions as futures on the Dask cluster at ``scheduler`` (or on a
    loopback LocalCluster of ``workers`` processes); the workers must see ``cohort_dir``, ``model``,
    ``bundle`` and ``out``'s folder at the same paths (a shared file system). ``plan`` replaces the
    cohort (:func:`synthetic_plan`). ``progress(line)`` receives one line per finished partition.
    """
    from nbrisk_core.classifier.model_io import read_card

    started = time.perf_counter()
    if out is None or Path(out).suffix != ".parquet":
        raise InputError(f"--out {out}: expected a file name ending in .parquet")
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"--out {out}: folder {out.parent} does not exist")
    if not isinstance(partition_size, int) or partition_size < 1:
        raise InputError(f"--partition-size {partition_size!r}: expected a whole number >= 1")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"--batch-size {batch_size!r}: expected a whole number >= 1")
    if backend not in ("local", "dask"):
        raise InputError(f"--backend {backend!r}: expected local or dask")
    if scheduler is not None and backend != "dask":
        raise InputError(f"--scheduler {scheduler}: a scheduler address is only used with --backend dask")
    model_path = Path(model) if model is not None else None
    if model_path is None or not model_path.is_file():
        raise InputError(f"--classifier {model}: model file not found (expected a .safetensors written by "
                         "'nbrisk train', with its .json card beside it)")
    model_sha = read_card(model_path).get("sha256")
    bundle_sha = None
    if bundle is not None:
        from nbrisk_core.prognosis.bundle import read_card as read_bundle_card

        bundle_sha = read_bundle_card(bundle).get("sha256")  # a missing or foreign bundle is refused here
    if plan is None:
        if cohort_dir is None:
            raise InputError("--cohort DIR is required")
        plan = cohort_plan(cohort_dir, bundle is not None)
    if not plan.n_patients:
        raise InputError(f"{cohort_dir}: the cohort has no patients")
    folder = parts_dir(out)
    manifest = {"model_sha256": model_sha, "bundle_sha256": bundle_sha, "clinical_sha256": plan.digest,
                "source": plan.source, "partition_size": partition_size, "n_patients": plan.n_patients}
    manifest_path = folder / MANIFEST
    if manifest_path.is_file():
        before = json.loads(manifest_path.read_text())
        if before != manifest:
            changed = sorted(k for k in manifest if before.get(k) != manifest[k])
            raise InputError(f"{folder}: parts of another scoring run (different {', '.join(changed)}); "
                             "remove the folder to start over, or score into another --out")
    folder.mkdir(exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    meta = {"model_sha256": model_sha, "bundle_sha256": bundle_sha}
    n_partitions = -(-plan.n_patients // partition_size)
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    done = sum(1 for index in range(n_partitions) if (folder / PART_PATTERN.format(index)).is_file())
    if done:
        say(f"score: {done} of {n_partitions} partitions already written in {folder}: not redone")

    def tasks():
        """One task per partition not yet written, built as the runner asks for it."""
        start = 0
        for index, (chunk, clinical) in enumerate(plan.chunks(partition_size)):
            part = folder / PART_PATTERN.format(index)
            if not _part_done(part, chunk):
                task_source = dict(plan.source)
                if plan.source["kind"] == "synthetic":
                    task_source["numbers"] = list(range(start + 1, start + len(chunk) + 1))
                yield {"index": index, "ids": chunk, "clinical": clinical, "source": task_source,
                       "model": str(model_path.resolve()),
                       "bundle": str(Path(bundle).resolve()) if bundle else None, "part": str(part.resolve()),
                       "meta": meta, "threads": threads, "batch_size": batch_size}
            start += len(chunk)

    summaries = []
    for summary in _run(tasks(), backend, scheduler, workers):
        summaries.append(summary)
        finished = done + len(summaries)
        rate = summary["n"] / summary["seconds"] if summary["seconds"] > 0 else 0.0
        say(f"score: partition {summary['index'] + 1}/{n_partitions}: {summary['n']} patients in "
            f"{summary['seconds']:.1f} s ({rate:.1f}/s); {finished}/{n_partitions} partitions done")
    scored, skipped = _combine(folder, n_partitions, out, bundle is not None, manifest)
    shutil.rmtree(folder)
    return ScoreRun(out, n_partitions, done, scored, skipped, time.perf_counter() - started, summaries)


def _run(tasks, backend: str, scheduler: str | None, workers: int, wave: int = 64):
    """Yield each task's summary as it finishes. On Dask the partitions are futures, submitted in waves
    of ``wave`` so that the tasks in flight (and their clinical records) stay bounded."""
    if backend == "local":
        for task in tasks:
            yield score_partition(task)
        return
    import itertools

    from nbrisk_core.prognosis.grid import _dask_runner

    tasks = iter(tasks)
    first = list(itertools.islice(tasks, wave))
    if not first:
        return
    with _dask_runner(workers, scheduler) as run:
        batch = first
        while batch:
            # one future per partition; the runner yields results in submission order
            yield from run([(score_partition, (task,), {}) for task in batch])
            batch = list(itertools.islice(tasks, wave))


def _combine(folder: Path, n_partitions: int, out: Path, with_prognosis: bool, manifest: dict):
    """Concatenate the parts into ``out`` one part at a time; ``(rows, skipped patients)``."""
    import pyarrow.parquet as pq

    schema = _arrow_schema(with_prognosis)
    meta = {k: manifest[k] for k in ("model_sha256", "bundle_sha256", "clinical_sha256", "n_patients")}
    schema = schema.with_metadata({_META_KEY: json.dumps(meta).encode()})
    tmp = out.with_name(out.name + ".tmp")
    rows = skipped = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for index in range(n_partitions):
            part = folder / PART_PATTERN.format(index)
            table = pq.read_table(part)
            skipped += len(json.loads(table.schema.metadata[_META_KEY]).get("skipped", []))
            writer.write_table(table.replace_schema_metadata(schema.metadata).cast(schema))
            rows += table.num_rows
            del table
    tmp.replace(out)
    return rows, skipped
