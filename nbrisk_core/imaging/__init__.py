"""Imaging: CT ingest (DICOM and 2-D images), windowing, phase assignment, slice selection,
and the model input builder shared by the dashboard, the CLI and training."""
