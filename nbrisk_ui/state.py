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
