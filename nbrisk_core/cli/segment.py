"""`nbrisk segment PATH [--json] [--out DIR]`: propose the tumour's max-area slice in every phase.

For a CT study (folder, zip or file) the shipped MONAI network (``models/seg_demo``) segments the
tumour in each phase; per phase the result is the series UID (remapped, as the reader de-identifies
it), the proposed max-area slice (0-based index in the series sorted by ascending z, the convention
of ``truth.csv``), its area in mm², the tumour volume in mL, the longest axial diameter in mm and a
confidence. ``--json`` prints one object ``{"phases": {"nc": {...}, "art": {...}, "pv": {...}}}``
(plus ``model_sha256`` and ``seconds``). ``--out DIR`` writes each phase's mask as
``DIR/<phase>_mask.nii.gz`` (NIfTI-1). A study without CT exits 2 with one line; a phase whose
tumour is not found is flagged (``found: false``, confidence 0), not an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("segment", help="propose each phase's max-area slice, volume and diameter",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", nargs="?", type=Path, metavar="PATH", help="CT study: folder, zip or file")
    p.add_argument("--json", action="store_true", help='print one JSON object {"phases": {...}}')
    p.add_argument("--out", type=Path, metavar="DIR", help="write the masks as DIR/<phase>_mask.nii.gz")
    p.add_argument("--model", type=Path, metavar="FILE",
                   help="segmentation model (.safetensors with its .json card; default models/seg_demo)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.set_defaults(handler=run)


def segment_report(path, model_path=None, device: str = "cpu", out_dir=None) -> dict:
    """What ``nbrisk segment --json`` prints (also used by tests); writes the masks to ``out_dir``."""
    import time

    import numpy as np

    from nbrisk_core.errors import InputError
    from nbrisk_core.imaging.dicom_io import load_study
    from nbrisk_core.segment.inference import segment_phases, study_phases
    from nbrisk_core.segment.model import load_seg_model, shipped_seg_model_path

    started = time.perf_counter()
    model_path = Path(model_path) if model_path else shipped_seg_model_path()
    if not Path(path).exists():
        raise InputError(f"{path}: no such file or folder; expected a CT study (folder, zip or file)")
    study = load_study(path)
    phases = study_phases(study)   # no CT: an InputError before the model is even read
    if not model_path.with_suffix(".json").is_file():
        raise InputError(f"{model_path}: no segmentation model; train it with 'nbrisk train-seg' "
                         "or give --model FILE")
    model = load_seg_model(model_path, device=device)
    results = segment_phases(model, phases)
    if out_dir is not None:
        from nbrisk_core.segment.nifti import mask_affine, write_mask_nifti

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        by_uid = {s.series_uid: s for s in study.series}
        for name, result in results.items():
            volume = phases[name]
            orientation = by_uid[volume.series_uid].orientation if volume.series_uid in by_uid else None
            affine = mask_affine(volume.pixel_spacing, volume.slice_spacing_mm, float(np.min(volume.z_mm)),
                                 orientation)
            write_mask_nifti(out_dir / f"{name}_mask.nii.gz", result.mask, affine,
                             f"NBRisk tumour mask, phase {name}")
    return {"phases": {name: r.to_dict() for name, r in results.items()},
            "model_sha256": model.sha256, "seconds": round(time.perf_counter() - started, 3)}


def run(args) -> int:
    import json

    from nbrisk_core.errors import InputError

    if args.path is None:
        raise InputError("missing PATH: give a CT study (folder, zip or file) to segment")
    report = segment_report(args.path, args.model, args.device, args.out)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, r in report["phases"].items():
        if not r["found"]:
            print(f"{name.upper()}: no tumour found (flagged); the middle slice {r['max_area_slice']} "
                  "is only a placeholder: click the tumour on the Case page")
            continue
        flag = "  LOW CONFIDENCE: check it" if r["low_confidence"] else ""
        print(f"{name.upper()}: max-area slice {r['max_area_slice']}, area {r['area_mm2']:.0f} mm², volume "
              f"{r['volume_ml']:.1f} mL, longest diameter {r['longest_diameter_mm']:.1f} mm, "
              f"confidence {r['confidence']:.2f}{flag}")
    if args.out:
        print(f"masks written to {args.out}/<phase>_mask.nii.gz")
    return 0


__all__ = ["register", "run", "segment_report"]
