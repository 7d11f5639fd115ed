"""Engine, migrations and sessions of the case store.

The default store is an embedded SQLite file at ``data/nbrisk.db``
(:func:`nbrisk_core.config.database_url`), created on first use; ``NBRISK_DATABASE_URL`` points
NBRISK at PostgreSQL instead (``postgresql+psycopg://user:password@host:port/db``, psycopg 3).
The schema is created and upgraded by the Alembic migrations shipped inside this package, run
programmatically with :func:`alembic.command.upgrade` the first time a process opens a URL.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from nbrisk_core import config
from nbrisk_core.errors import InputError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_LOCK = threading.Lock()
_ENGINES: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers work while a case is being saved;
    # the busy timeout makes concurrent writers (several dashboard sessions) wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` (SQLite parent directory created; PostgreSQL via psycopg 3)."""
    try:
        parsed = make_url(url)
    except Exception as error:  # sqlalchemy.exc.ArgumentError, ValueError
        raise InputError(f"NBRISK_DATABASE_URL = {url!r} is not a database URL "
                         "(expected e.g. sqlite:///data/nbrisk.db or postgresql+psycopg://u:p@host/db)") from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            # a bare postgresql:// would pick psycopg2, which is not installed; psycopg 3 is
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=10)
    raise InputError(f"NBRISK_DATABASE_URL = {parsed.render_as_string(hide_password=True)!r}: "
                     f"database {backend!r} is not supported (expected sqlite or postgresql)")


def alembic_config(engine: Engine | None = None):
    """Alembic configuration pointing at the migrations inside this package (no alembic.ini)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False)
                            .replace("%", "%%"))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema of ``engine`` to ``revision`` (idempotent)."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default :func:`config.database_url`), migrated on first use."""
    url = url or config.database_url()
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = make_engine(url)
            migrate(engine)
            _ENGINES[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine (tests, and the CLI before it exits)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine):
    """A session in one transaction: committed on success, rolled back (nothing written) on error."""
    with session_factory(engine).begin() as session:
        yield session
