"""Case store: SQLAlchemy 2 models, Alembic migrations, users and sign-in, audit trail, saved cases.

Open the store with :func:`get_engine` (SQLite at ``data/nbrisk.db`` unless ``NBRISK_DATABASE_URL``
says otherwise; migrated on first use) and pass the engine to the functions of
:mod:`~nbrisk_core.store.users`, :mod:`~nbrisk_core.store.cases` and :mod:`~nbrisk_core.store.audit`.

Examples
--------
>>> from nbrisk_core.store import get_engine, cases
>>> engine = get_engine("sqlite://")          # in-memory, for a quick look
>>> cases.list_cases(engine, "alice")
[]
"""

from nbrisk_core.store.db import dispose_engines, get_engine, make_engine, migrate

__all__ = ["get_engine", "make_engine", "migrate", "dispose_engines"]
