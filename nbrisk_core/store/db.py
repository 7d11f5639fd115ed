"""Engine, migrations and sessions of the case store.

The default store is an embedded SQLite file at ``data/nbrisk.db``
(:func:`nbrisk_core.config.database_url`), created on first use; ``NBRISK_DATABASE_URL`` points
NBRISK at PostgreSQL instead (``postgresql+psycopg://user:password@host:port/db``, psycopg 3).
The schema is created and upgraded by the Alembic migrations shipped inside this package, run
programmatically with :func:`alembic.command.upgrade` the first time a process opens a URL.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import zlib
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from nbrisk_core import config
from nbrisk_core.errors import InputError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_LOCK = threading.Lock()
_ENGINES: dict[str, Engine] = {}
_LOG = logging.getLogger(__name__)

#: execution option of a read-only transaction (SQLite: a deferred BEGIN, see :func:`_sqlite_begin`)
READONLY = "nbrisk_readonly"
#: permissions of what the store creates: the database and its -wal/-shm files, and its folder
FILE_MODE = 0o600
FOLDER_MODE = 0o700
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # SQLAlchemy, not the sqlite3 module, decides where a transaction begins (the sqlite3 module
    # would begin one only before the first write, after the reads it depends on): see _sqlite_begin.
    dbapi_connection.isolation_level = None
    # Foreign keys are off by default in SQLite; WAL lets readers work while a case is being saved;
    # the busy timeout makes concurrent writers (several dashboard sessions) wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin(conn) -> None:
    # A writing transaction takes SQLite's write lock at BEGIN (IMMEDIATE), so that what it read
    # stays true until it commits: the audit chain's last hash, the sign-in limiter's counts. A
    # read-only transaction begins DEFERRED and runs beside a writer (WAL).
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READONLY) else "BEGIN IMMEDIATE")


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (its folder 0700 when the store creates it) before SQLite opens it.

    SQLite creates the -wal and -shm files with the database file's permissions, so they are 0600
    too. A file made earlier with looser permissions is tightened (when this process owns it).
    """
    folder = path.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=FOLDER_MODE, exist_ok=True)
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode is filtered by the umask
    if not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
        except FileExistsError:
            pass  # another process made it first
        except OSError as error:
            raise InputError(f"database file {str(path)!r} cannot be created ({error.strerror}); "
                             "expected a writable folder (NBRISK_DATABASE_URL)") from error
    for candidate in (path, *(path.with_name(path.name + s) for s in SQLITE_COMPANIONS)):
        try:
            info = candidate.stat()
        except OSError:
            continue
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(candidate, FILE_MODE)
            _LOG.warning("tightened the permissions of %s to 0600 (it was readable by others)",
                         candidate.name)


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
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_sqlite_file(Path(database).expanduser())
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
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
            for problem in protection_problems(engine):
                _LOG.warning("audit trail: %s", problem)
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
def transaction(engine: Engine, *, readonly: bool = False):
    """A session in one transaction: committed on success, rolled back (nothing written) on error.

    A writing transaction (the default) holds SQLite's write lock from its start; ``readonly=True``
    runs beside writers and must not write.
    """
    with session_factory(engine).begin() as session:
        if readonly:
            session.connection(execution_options={READONLY: True})
        yield session


def serialize(session: Session, name: str) -> None:
    """Make the rest of ``session``'s transaction run one at a time with every other one that calls
    this with the same ``name`` (until commit or rollback).

    PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``). SQLite: nothing to do,
    a writing transaction already holds the database's write lock from its BEGIN IMMEDIATE.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.flush()  # row locks first, then the named lock (one order for every caller)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": zlib.crc32(f"nbrisk:{name}".encode())})


#: the triggers that make audit_events append-only (migration 0001), per dialect
SQLITE_TRIGGERS = ("audit_events_no_update", "audit_events_no_delete", "audit_events_no_replace")
POSTGRES_TRIGGERS = ("audit_events_no_update_delete", "audit_events_no_truncate", "audit_events_chain_only")


def protection_problems(engine: Engine) -> list[str]:
    """What is missing for the trail to be append-only in this database (empty when nothing is).

    SQLite: the three triggers. PostgreSQL: the triggers, and the connected role must not hold UPDATE,
    DELETE or TRUNCATE on ``audit_events`` (the migration revokes them; a site that re-grants them, or
    runs the dashboard as a role that has them, is told here).
    """
    problems = []
    with engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "sqlite":
            present = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                            "AND tbl_name = 'audit_events'")).scalars())
            wanted = SQLITE_TRIGGERS
        elif dialect == "postgresql":
            present = set(conn.execute(text("SELECT tgname FROM pg_trigger WHERE tgrelid = "
                                            "'audit_events'::regclass AND NOT tgisinternal")).scalars())
            wanted = POSTGRES_TRIGGERS
            for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
                if conn.execute(text("SELECT has_table_privilege(current_user, 'audit_events', :p)"),
                                {"p": privilege}).scalar():
                    role = conn.execute(text("SELECT current_user")).scalar()
                    problems.append(f"the database role {role!r} holds {privilege} on audit_events "
                                    "(expected: revoked, see docs/security.md)")
        else:  # pragma: no cover - make_engine accepts only these two
            return [f"database {dialect!r} is not checked"]
        for name in wanted:
            if name not in present:
                problems.append(f"trigger {name} is missing: audit_events is not append-only")
    return problems
