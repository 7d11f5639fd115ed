"""`nbrisk segment PATH [--json] [--out DIR]`: propose the tumour's max-area slice in every phase.

For a CT study (folder, zip or file) the shipped MONAI network (``models/seg_demo``) segments the
tumour in each phase; per phase the result is the series UID (remapped, as the reader de-identifies
it), the proposed max-area slice (0-based index in the series sorted by ascending z, the convention
of ``truth.csv``), its area in mm², the tumour volume in mL, the longest axial diameter in mm and a
confidence. ``--json`` prints one object ``{"phases": {"nc": {...}, "art": {...}, "pv": {...}}}``
(plus ``model_sha256`` and ``seconds``). ``--out DIR`` writes each phase's mask as
``DIR/<phase>_mask.nii.gz`` (NIfTI-1); with ``--format seg`` as ``DIR/<phase>_seg.dcm``, one DICOM
Segmentation (highdicom) per phase whose frames reference the source CT instances (it carries the
source study's patient and study identifiers, so that an archive files it with the study).
A study without CT exits 2 with one line; a phase whose
tumour is not found is flagged (``found: false``, confidence 0), not an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: mask file formats of ``--out``: format -> file name of a phase
MASK_FORMATS = {"nifti": "{phase}_mask.nii.gz", "seg": "{phase}_seg.dcm"}


def register(subparsers) -> None:
    p = subparsers.add_parser("segment", help="propose each phase's max-area slice, volume and diameter",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", nargs="?", type=Path, metavar="PATH", help="CT study: folder, zip or file")
    p.add_argument("--json", action="store_true", help='print one JSON object {"phases": {...}}')
    p.add_argument("--out", type=Path, metavar="DIR", help="write the masks as DIR/<phase>_mask.nii.gz")
    p.add_argument("--format", choices=MASK_FORMATS, default="nifti", dest="mask_format",
                   help="mask files written with --out: NIfTI-1 (default) or DICOM SEG (DIR/<phase>_seg.dcm)")
    p.add_argument("--model", type=Path, metavar="FILE",
                   help="segmentation model (.safetensors with its .json card; default models/seg_demo)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.set_defaults(handler=run)


def segment_report(path, model_path=None, device: str = "cpu", out_dir=None,
                   mask_format: str = "nifti") -> dict:
    """What ``nbrisk segment --json`` prints (also used by tests); writes the masks to ``out_dir``
    (``mask_format``: a key of :data:`MASK_FORMATS`)."""
    import time

    import numpy as np

    from nbrisk_core.errors import InputError
    from nbrisk_core.imaging.deid import Deidentifier
    from nbrisk_core.imaging.dicom_io import load_study
    from nbrisk_core.segment.inference import segment_phases, study_phases
    from nbrisk_core.segment.model import load_seg_model, shipped_seg_model_path

    started = time.perf_counter()
    model_path = Path(model_path) if model_path else shipped_seg_model_path()
    if not Path(path).exists():
        raise InputError(f"{path}: no such file or folder; expected a CT study (folder, zip or file)")
    if mask_format not in MASK_FORMATS:
        raise InputError(f"--format {mask_format}: unknown mask format; "
                         f"expected one of {', '.join(MASK_FORMATS)}")
    deidentifier = Deidentifier()  # kept: the DICOM SEG matches the remapped series back to the files
    study = load_study(path, deidentifier)
    phases = study_phases(study)   # no CT: an InputError before the model is even read
    if not model_path.with_suffix(".json").is_file():
        raise InputError(f"{model_path}: no segmentation model; train it with 'nbrisk train-seg' "
                         "or give --model FILE")
    model = load_seg_model(model_path, device=device)
    results = segment_phases(model, phases)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if mask_format == "seg":
            _write_seg(path, deidentifier, phases, results, model, out_dir)
        else:
            _write_nifti(study, phases, results, out_dir)
    return {"phases": {name: r.to_dict() for name, r in results.items()},
            "model_sha256": model.sha256, "seconds": round(time.perf_counter() - started, 3)}


def _write_nifti(study, phases, results, out_dir: Path) -> None:
    import numpy as np

    from nbrisk_core.segment.nifti import mask_affine, write_mask_nifti

    by_uid = {s.series_uid: s for s in study.series}
    for name, result in results.items():
        volume = phases[name]
        orientation = by_uid[volume.series_uid].orientation if volume.series_uid in by_uid else None
        affine = mask_affine(volume.pixel_spacing, volume.slice_spacing_mm, float(np.min(volume.z_mm)),
                             orientation)
        write_mask_nifti(out_dir / MASK_FORMATS["nifti"].format(phase=name), result.mask, affine,
                         f"NBRisk tumour mask, phase {name}")


def _write_seg(source, deidentifier, phases, results, model, out_dir: Path) -> None:
    from nbrisk_core.errors import InputError
    from nbrisk_core.segment.dicom_seg import match_slices, source_headers, write_dicom_seg

    headers = source_headers(source, deidentifier)
    for name, result in results.items():
        volume = phases[name]
        if volume.series_uid not in headers:
            raise InputError(f"{source}: phase {name}: no DICOM CT files of its series found for the SEG "
                             "(a DICOM SEG references DICOM CT instances)")
        write_dicom_seg(out_dir / MASK_FORMATS["seg"].format(phase=name),
                        match_slices(headers[volume.series_uid], volume.z_mm, volume.series_uid), result.mask,
                        model_name=model.path.stem if getattr(model, "path", None) else "seg_demo",
                        model_sha256=model.sha256, phase=name)


def run(args) -> int:
    import json

    from nbrisk_core.errors import InputError

    if args.path is None:
        raise InputError("missing PATH: give a CT study (folder, zip or file) to segment")
    if args.mask_format != "nifti" and args.out is None:
        raise InputError(f"--format {args.mask_format} writes mask files: give --out DIR as well")
    report = segment_report(args.path, args.model, args.device, args.out, args.mask_format)
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
        print(f"masks written to {args.out}/{MASK_FORMATS[args.mask_format].format(phase='<phase>')}")
    return 0


__all__ = ["register", "run", "segment_report"]
