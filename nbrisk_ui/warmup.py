"""Server start-up: load what the first visit of the Prognosis page would otherwise wait for.

``streamlit_app.py`` hands :func:`lifespan` to ``st.App``; once Streamlit's runtime runs, a daemon thread
imports the libraries the prognosis pages use (scikit-learn, scikit-survival, plotly, the engine), loads the
cohort's frozen bundle into the shared ``st.cache_resource`` (:func:`nbrisk_ui.prognosis.get_pipeline`),
and reads the cohort tables and CT embeddings into their ``st.cache_data`` entries. A user's first visit of
the Prognosis page then only renders. The server answers at once (the thread does not hold start-up up);
a visit that comes while the thread still loads waits for the same cache entry (Streamlit computes a
cached value once, under a lock per key) instead of loading a second copy.

``NBRISK_WARM_START=off`` turns it off (tests that start many servers). The server log gets one line,
``NBRISK warm start: ... in X s``, which ``benchmarks/bench_first_page.py`` waits for.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import time

LOG = logging.getLogger("nbrisk.warmup")
#: modules the Prognosis and Cohort pages import at their first run (the page scripts' imports)
MODULES = ("plotly.graph_objects", "sklearn", "sksurv", "nbrisk_core.service", "nbrisk_core.clinical.schema",
           "nbrisk_core.prognosis.pipeline", "nbrisk_core.prognosis.bundle", "nbrisk_core.prognosis.plots",
           "nbrisk_core.prognosis.evaluation", "nbrisk_core.prognosis.validation",
           "nbrisk_core.prognosis.individual", "nbrisk_core.features", "nbrisk_ui.cases", "nbrisk_ui.prognosis",
           # the first prediction: the PNG download (matplotlib's Agg canvas), the case's model hash
           "matplotlib.figure", "matplotlib.backends.backend_agg", "nbrisk_core.report.figures",
           "nbrisk_core.store.codec")
#: the result of the last warm start of this process (``None`` while it runs or when it never ran)
RESULT: dict | None = None
_DONE = threading.Event()


def enabled() -> bool:
    return os.environ.get("NBRISK_WARM_START", "on").strip().lower() != "off"


def warm(cohort_dir=None) -> dict:
    """Import the pages' libraries and fill the prognosis caches for ``cohort_dir`` (default: the app's).

    Returns ``{"seconds", "imports_s", "pipeline_s", "source", "problem"}``; never raises (a missing cohort
    or bundle is the pages' to explain, as before).
    """
    from nbrisk_core.errors import InputError

    started = time.perf_counter()
    result = {"problem": None, "source": None}
    for name in MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    result["imports_s"] = round(time.perf_counter() - started, 3)
    from nbrisk_ui import prognosis
    from nbrisk_ui.common import cohort_dir as app_cohort_dir
    from nbrisk_ui.common import load_cohort_tables

    path = str(cohort_dir or app_cohort_dir())
    loaded = time.perf_counter()
    try:
        load_cohort_tables(path)
        pipeline = prognosis.app_pipeline(path)
        result["source"] = prognosis.pipeline_source(pipeline) or "unknown"
        prognosis.cohort_embedding_table(path)
    except InputError as error:   # no cohort, no embeddings: the page says so at its visit
        result["problem"] = str(error)
    except Exception as error:  # noqa: BLE001 - a warm start must never take the server down
        result["problem"] = f"{type(error).__name__}: {error}"
    result["pipeline_s"] = round(time.perf_counter() - loaded, 3)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _run() -> None:
    global RESULT
    try:
        RESULT = warm()
        LOG.warning("NBRISK warm start: %s in %.2f s (imports %.2f s, prognosis model %.2f s)%s",
                    RESULT["source"] or "no prognosis model", RESULT["seconds"], RESULT["imports_s"],
                    RESULT["pipeline_s"], f"; {RESULT['problem']}" if RESULT["problem"] else "")
    finally:
        _DONE.set()


def start() -> threading.Thread | None:
    """Start the warm-up thread (once per process); None when turned off."""
    if not enabled():
        return None
    thread = threading.Thread(target=_run, name="nbrisk-warm-start", daemon=True)
    thread.start()
    return thread


@contextlib.asynccontextmanager
async def lifespan(_app):
    """``st.App(lifespan=...)``: runs after Streamlit's runtime has started (so its caches are the
    server's), starts the warm-up thread and returns at once."""
    start()
    yield
