"""`nbrisk score`: every patient of a cohort scored in partitions, into one parquet file.

Each patient gets the classifier's p(high risk), risk class and 16-d embedding (ct01..ct16), and with
``--prognosis BUNDLE`` (a frozen bundle from 'nbrisk prognosis fit') the MLRS and its group. Partitions
of ``--partition-size`` patients run in this process (``--backend local``) or as futures on a Dask
cluster (``--backend dask --scheduler tcp://HOST:PORT``; without an address a loopback LocalCluster of
``--workers`` processes). Each finished partition is written to ``OUT.parts/`` at once: an interrupted
run started again with the same arguments skips the partitions already written. Progress goes to
stderr; the summary to stdout (``--json``: one object).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from nbrisk_core.batch_score import DEFAULT_BATCH_SIZE, DEFAULT_PARTITION_SIZE
    from nbrisk_core.cli import path_argument

    p = subparsers.add_parser("score", help="batch scoring of a cohort (partitioned, resumable, Dask-ready)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", type=path_argument, required=True, metavar="DIR", help="cohort directory")
    p.add_argument("--classifier", type=path_argument, required=True, metavar="MODEL",
                   help="classifier .safetensors (its .json card beside it)")
    p.add_argument("--prognosis", type=path_argument, metavar="BUNDLE",
                   help="frozen prognosis bundle folder: adds mlrs, mlrs_group")
    p.add_argument("--out", type=path_argument, required=True, metavar="FILE.parquet", help="output file")
    p.add_argument("--backend", choices=["local", "dask"], default="local",
                   help="where partitions run (default: %(default)s)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="with --backend dask: a running scheduler")
    p.add_argument("--workers", type=int, default=2,
                   help="with --backend dask and no --scheduler: LocalCluster processes "
                        "(default: %(default)s)")
    p.add_argument("--partition-size", type=int, default=DEFAULT_PARTITION_SIZE, metavar="N",
                   help="patients per partition (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per partition task (default: 1)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help="images per forward pass (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(handler=run)


def run(args) -> int:
    import json

    from nbrisk_core.batch_score import score_cohort

    result = score_cohort(args.cohort, args.classifier, args.out, bundle=args.prognosis, backend=args.backend,
                          scheduler=args.scheduler, workers=args.workers, partition_size=args.partition_size,
                          threads=args.threads, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"{result.scored} patients scored into {result.out} ({result.n_partitions} partitions, "
          f"{result.done_before} resumed) in {result.seconds:.1f} s"
          + (f"; {result.skipped} left out without chosen slices" if result.skipped else ""))
    return 0
