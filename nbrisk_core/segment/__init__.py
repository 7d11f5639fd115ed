"""Automatic tumour segmentation with a small MONAI network (issue 21; seed paper 004's system).

Data flow, one way: a CT phase's HU volume ``(n_slices, rows, cols)`` (ascending z, as
:class:`~nbrisk_core.imaging.dicom_io.CTSeries` holds it) -> :mod:`.preprocess` (W600/L100 window,
three adjacent slices as channels: 2.5-D, in-plane area resampling to the network's input size) ->
the network (``monai.networks.nets.UNet``, 2-D, two classes) -> :mod:`.postprocess` (3-D connected
components scored across the aligned phases, the best one kept, holes filled, back to full
resolution) -> per phase the max-area slice, area, volume, longest diameter and a confidence
(:func:`~nbrisk_core.segment.inference.segment_phases`).

- :mod:`.data` -- training slices from the demo generator (its own cohort seed and random stream);
- :mod:`.model` -- network configuration, the model card, save/load with a SHA-256 check;
- :mod:`.training` -- the resumable ``nbrisk train-seg`` run (DiceCELoss, checkpoints each epoch);
- :mod:`.inference` -- ``nbrisk segment`` and the Case page's proposal.

Importing this package is light; torch and MONAI are imported inside the functions that need them.
"""

SHIPPED_SEG_MODEL = "seg_demo"
#: the segmentation training cohort's seed (the demo cohort's is 20250416); here, not in :mod:`.data`,
#: so that ``nbrisk --help`` can show it without importing the generator
SEG_TRAINING_SEED = 20260421

__all__ = ["SEG_TRAINING_SEED", "SHIPPED_SEG_MODEL"]
