"""Which TRIPOD+AI reporting items the external-validation report covers.

TRIPOD+AI: Collins GS et al., BMJ 2024;385:e078378 (update of TRIPOD 2015 for regression and
machine-learning prediction models). Items are named by topic; the report fills in what the software
knows, and lists as "author" what only the study team can write (setting, eligibility, ethics...).
"""

from __future__ import annotations

#: (topic, what the report gives or who must give it); status "covered" / "partly" / "author"
CHECKLIST: tuple[tuple[str, str, str], ...] = (
    ("Title and abstract: identify the study as external validation", "author",
     "the report states external validation of a frozen model; the manuscript title is the authors'"),
    ("Source of data (study design, dates)", "partly", "cohort name, synthetic flag and content hash; "
     "recruitment dates and setting are the authors'"),
    ("Participants (eligibility, setting, treatments)", "author", "not known to the software"),
    ("Data preparation (pre-processing, same as development)", "covered",
     "frozen encoders, training means and SDs, no re-standardisation; classifier preprocessing "
     "from its card"),
    ("Outcome (definition, time horizon, blinding)", "partly",
     "overall survival from os_days/os_event; horizons 1/3/5 years; blinding is the authors'"),
    ("Predictors (definition, measurement)", "partly",
     "the model's features and the clinical schema's units; measurement procedures are the authors'"),
    ("Sample size", "covered", "patients and deaths in the external cohort"),
    ("Missing data (how handled)", "covered",
     "imputation by the frozen training donors (predictive mean matching), counts per variable"),
    ("Analytical methods: model specification applied unchanged", "covered",
     "bundle SHA-256, selected combination, frozen MLRS cut-off; no refit"),
    ("Analytical methods: performance measures", "covered",
     "C-index (bootstrap CI), time-dependent AUC, calibration of S(3y), integrated Brier score, "
     "log-rank, decision curve; classifier AUC (DeLong CI), accuracy/sensitivity/specificity, calibration"),
    ("Model updating / recalibration", "covered", "none done (reported as such)"),
    ("Class imbalance", "partly", "HR/NHR counts of the external cohort; no rebalancing"),
    ("Fairness (performance in subgroups)", "author", "subgroup analyses are not part of this report"),
    ("Model output (what the user sees)", "covered", "MLRS, high/low group, S(t), p(high risk)"),
    ("Training versus evaluation data differences", "covered",
     "case-mix table: each variable's distribution, "
     "missingness, follow-up, MLRS spread"),
    ("Participants: flow and characteristics", "partly", "patients scored and left out (with reason)"),
    ("Model performance with confidence intervals", "covered",
     "every headline metric has a 95 % CI where defined"),
    ("Interpretation and limitations", "author", "the report lists the automated checks only"),
    ("Ethics, funding, conflicts, protocol, registration", "author", "not known to the software"),
    ("Data and code availability", "partly",
     "bundle SHA-256 and library versions identify the model and code"),
)


def checklist() -> list[dict]:
    """The checklist as rows ``{topic, status, how}`` for the report."""
    return [{"topic": topic, "status": status, "how": how} for topic, status, how in CHECKLIST]
