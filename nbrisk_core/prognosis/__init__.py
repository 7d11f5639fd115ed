"""Prognosis: clinical data preparation, Cox screening, the survival combination grid, MLRS and
its evaluation (Kaplan-Meier, time-dependent ROC, decision curves, associations)."""
