"""Session-state keys, named in one place (per-user state lives in ``st.session_state``)."""

# Case page -> Risk page -> Prognosis page
# (the typed objects of nbrisk_core.case; nbrisk_ui.cases.current_case() gathers them into one Case)
CASE = "nbrisk.case"                  # de-identified study summary (nbrisk_core.imaging.case.case_meta)
CHOSEN_SLICES = "nbrisk.chosen_slices"  # Phase -> ChosenSlice (the max-area slice)
RISK_RESULT = "nbrisk.risk_result"    # RiskResult (probability per variant, embedding, CAM per phase)
CLINICAL_VALUES = "nbrisk.clinical_values"  # labs as entered (validated)
PROGNOSIS_RESULT = "nbrisk.prognosis_result"  # Prognosis
CASE_STORED = "nbrisk.case_stored"    # StoredInfo of the opened stored case (None for a new case)
CASE_ID = "nbrisk.case_id"            # id of the case in the case store, once saved
CASE_VERSION = "nbrisk.case_version"  # optimistic-locking version of the stored case
UPLOAD_DIR = "nbrisk.upload_dir"      # private temporary directory of this session's uploads
USER = "nbrisk.user"                  # signed-in user (None when auth is off)

# Workflow (case store, sign-in): added by the Workflow issue
CASE_LABEL = "nbrisk.case_label"      # pseudonymous label of the current case (never a name)
CASE_NOTES = "nbrisk.case_notes"      # reviewer's notes of the current case
CASE_STATUS = "nbrisk.case_status"    # draft / reviewed / signed_off of the current case

#: the working objects a saved case restores (state key -> the Case field it fills)
CASE_OBJECT_KEYS = {
    CASE: "study",
    CHOSEN_SLICES: "slices",
    RISK_RESULT: "risk",
    CLINICAL_VALUES: "clinical",
    PROGNOSIS_RESULT: "prognosis",
}

# Case page (imaging) working state, one case per session
IMAGING_STUDY = "nbrisk.imaging.study"            # nbrisk_core.imaging.Study of the loaded case
IMAGING_SOURCE = "nbrisk.imaging.source"          # what was loaded ("demo P0001" / "upload of N files")
PHASE_ASSIGNMENT = "nbrisk.imaging.phase_assignment"  # series_uid -> "nc" | "art" | "pv" | None
PHASE_SUGGESTIONS = "nbrisk.imaging.phase_suggestions"  # series_uid -> PhaseSuggestion
SEGMENTATIONS = "nbrisk.imaging.segmentations"    # phase -> Segmentation from the seed click
VIEWER_SLICE = "nbrisk.imaging.viewer_slice"      # phase -> slice index shown
CONFIRMED_SLICES = "nbrisk.imaging.confirmed"     # phase -> chosen slice (before "send to Risk")
#: the Case page's working state of the loaded study (dropped when a saved case is reopened)
IMAGING_KEYS = (IMAGING_STUDY, IMAGING_SOURCE, PHASE_ASSIGNMENT, PHASE_SUGGESTIONS, SEGMENTATIONS,
                VIEWER_SLICE, CONFIRMED_SLICES)

# Prognosis and Cohort pages: widget keys (the form's keys are PROGNOSIS_FORM + variable name, and
# + ".unit" for its unit selector; the Cohort page's are COHORT_WIDGETS + age/mycn/stage/horizon/...)
PROGNOSIS_FORM = "nbrisk.prognosis.form."
PROGNOSIS_DEMO_PATIENT = "nbrisk.prognosis.demo_patient"  # cohort patient whose CT features the demo uses
COHORT_WIDGETS = "nbrisk.cohort."
PROGNOSIS_GRID = "nbrisk.prognosis.grid"  # grid this session asked for ("full" after the Cohort page's button)
NOMOGRAM_FORM = "nbrisk.prognosis.nomogram."   # scenario form: NOMOGRAM_FORM + predictor name
NOMOGRAM_SCENARIO = "nbrisk.prognosis.nomogram_scenario"  # {predictor: value} of the compared scenario
PROGNOSIS_BUNDLE_PENDING = "nbrisk.prognosis.bundle_pending"  # an admin's full search: save it when it is done
PROGNOSIS_BUNDLE_SAVED = "nbrisk.prognosis.bundle_saved"  # {"fit", "name", "sha256", "backup"} of the last save
