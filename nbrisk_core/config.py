"""Where NBRisk finds its data, models and database.

Every location can be overridden by an environment variable, so a site can point NBRisk at
its own storage without editing code:

==========================  =====================================  ==========================
variable                    meaning                                default
==========================  =====================================  ==========================
``NBRISK_HOME``             project root (data/ and models/ live   the current directory if it
                            under it)                              holds ``models/``, else the
                                                                   source checkout
``NBRISK_DATA_DIR``         the cohort the app opens on            ``$NBRISK_HOME/data/demo``
``NBRISK_MODELS_DIR``       shipped model files and model cards    ``$NBRISK_HOME/models``
                            (a cohort's own ``<cohort>/models/``
                            comes first: :func:`cohort_models_dir`)
``NBRISK_CV_DIR``           CV results the Cohort page shows       ``$NBRISK_HOME/data/cv/``
                            (``nbrisk benchmark --cv --out``)      + the cohort's folder name
``NBRISK_DATABASE_URL``     case store (SQLAlchemy URL)            SQLite at ``data/nbrisk.db``
``NBRISK_AUTH``             sign-in required unless ``off``        ``on`` (``make run``: ``off``)
``NBRISK_COMPARE_DIR``      the ``nbrisk compare`` output the      ``$NBRISK_HOME/reports/
                            Models page shows                      compare_demo``
==========================  =====================================  ==========================
"""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    """The project root: ``NBRISK_HOME``, else the source checkout this package lives in."""
    env = os.environ.get("NBRISK_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return _SOURCE_ROOT


def data_dir() -> Path:
    """The directory of generated data (git-ignored)."""
    return project_root() / "data"


def demo_cohort_dir() -> Path:
    """The cohort the dashboard opens on (``NBRISK_DATA_DIR``, default ``data/demo``)."""
    env = os.environ.get("NBRISK_DATA_DIR")
    return Path(env).expanduser().resolve() if env else data_dir() / "demo"


def models_dir() -> Path:
    """Shipped model weights (fp16 safetensors) with their JSON model cards."""
    env = os.environ.get("NBRISK_MODELS_DIR")
    return Path(env).expanduser().resolve() if env else project_root() / "models"


def cohort_models_dir(cohort_dir: Path | str | None = None) -> Path:
    """The models a cohort uses: ``<cohort>/models/`` when that folder exists, else :func:`models_dir`.

    A research group keeps the classifier trained on its own cohort next to it
    (``nbrisk train --cohort DIR --out DIR/models/swin_art_demo``); every other cohort, the demo
    included, uses ``NBRISK_MODELS_DIR`` (default ``$NBRISK_HOME/models``).
    """
    if cohort_dir is not None:
        own = Path(cohort_dir) / "models"
        if own.is_dir():
            return own.resolve()
    return models_dir()


def cv_results_dir(cohort_dir: Path | str) -> Path:
    """Where the Cohort page reads the cohort's internal validation (``nbrisk benchmark --cv K --data COHORT
    --out DIR`` writes ``cv_folds.csv`` and ``cv_summary.json``): ``NBRISK_CV_DIR``, else
    ``data/cv/<cohort folder name>``."""
    env = os.environ.get("NBRISK_CV_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return data_dir() / "cv" / Path(cohort_dir).resolve().name


def compare_dir() -> Path:
    """The ``nbrisk compare`` output folder the Models page shows (and an admin's run there writes)."""
    env = os.environ.get("NBRISK_COMPARE_DIR")
    return Path(env).expanduser().resolve() if env else project_root() / "reports" / "compare_demo"


def database_url() -> str:
    """SQLAlchemy URL of the case store; SQLite under ``data/`` unless ``NBRISK_DATABASE_URL``."""
    env = os.environ.get("NBRISK_DATABASE_URL")
    if env:
        return env
    return f"sqlite:///{data_dir() / 'nbrisk.db'}"
