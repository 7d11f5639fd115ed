"""Session-state keys, named in one place (per-user state lives in ``st.session_state``)."""

# Case page -> Risk page -> Prognosis page
CASE = "nbrisk.case"                  # the current case (nbrisk_core.imaging case object / dict)
CHOSEN_SLICES = "nbrisk.chosen_slices"  # phase -> chosen max-area slice (HU 2-D array + metadata)
RISK_RESULT = "nbrisk.risk_result"    # classifier output for the current case (incl. 16-d embedding)
CLINICAL_VALUES = "nbrisk.clinical_values"  # labs as entered
PROGNOSIS_RESULT = "nbrisk.prognosis_result"
CASE_ID = "nbrisk.case_id"            # id of the case in the case store, once saved
CASE_VERSION = "nbrisk.case_version"  # optimistic-locking version of the stored case
UPLOAD_DIR = "nbrisk.upload_dir"      # private temporary directory of this session's uploads
USER = "nbrisk.user"                  # signed-in user (None when auth is off)

# Workflow (case store, sign-in): added by the Workflow issue
CASE_LABEL = "nbrisk.case_label"      # pseudonymous label of the current case (never a name)
CASE_NOTES = "nbrisk.case_notes"      # reviewer's notes of the current case
CASE_STATUS = "nbrisk.case_status"    # draft / reviewed / signed_off of the current case
AUTH_SESSION_KEY = "nbrisk.auth_session_key"  # random per-browser-session key (sign-in rate limit)

#: the working objects a saved case restores (state key -> logical name in nbrisk_core.store.session)
CASE_OBJECT_KEYS = {
    CASE: "case",
    CHOSEN_SLICES: "chosen_slices",
    RISK_RESULT: "risk_result",
    CLINICAL_VALUES: "clinical_values",
    PROGNOSIS_RESULT: "prognosis_result",
}
