"""`nbrisk embed`: the 16-d CT embedding (Swin-ART hidden layer) of every patient of a cohort.

Cached as ``data/embeddings/<model sha256[:16]>.parquet`` (index ``patient_id``, ``ct01``..``ct16``);
a second call reads the cache. ``--out FILE`` also writes a copy (``.parquet`` or ``.csv``).
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("embed", help="16-d CT embeddings of a cohort (cached by model SHA-256)",
                              description=__doc__)
    p.add_argument("--cohort", help="cohort directory (default data/demo)")
    p.add_argument("--model", help="model .safetensors (default models/swin_art_demo.safetensors)")
    p.add_argument("--out", help="also write the table here (.parquet or .csv)")
    p.add_argument("--no-cache", action="store_true", help="recompute and do not write the cache")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(handler=run)


def run(args) -> int:
    import time
    from pathlib import Path

    import torch

    from nbrisk_core.classifier.embeddings import cohort_embeddings
    from nbrisk_core.errors import InputError

    torch.set_num_threads(max(1, args.threads))
    started = time.perf_counter()
    frame = cohort_embeddings(Path(args.cohort) if args.cohort else None, args.model, use_cache=not args.no_cache)
    if args.out:
        out = Path(args.out)
        if out.suffix == ".parquet":
            frame.to_parquet(out)
        elif out.suffix == ".csv":
            frame.to_csv(out)
        else:
            raise InputError(f"--out {out}: expected a .parquet or .csv file name")
    print(f"{len(frame)} patients x {frame.shape[1]} CT features in {time.perf_counter() - started:.1f} s")
    return 0
