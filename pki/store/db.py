"""Engine creation and migrations.

SQLite (default) runs in WAL mode with a busy timeout so concurrent issuers wait instead of failing; PostgreSQL is
selected by ``PNC_DATABASE_URL``. The schema is owned by alembic migrations (``pki/store/migrations``), applied at
start-up; tests check that the migrations and the models do not drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

from pki.store import checkpoint, write_lock

MIGRATIONS = Path(__file__).parent / "migrations"
READ_ONLY = "pnc_read_only"  # execution option of connections that only read (see Database.reader)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        file_path = sqlite_file(url)
        if file_path is not None:
            file_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=pool_size,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            if file_path is not None:  # checkpoints run in the background (pki.store.checkpoint)
                cur.execute(f"PRAGMA wal_autocheckpoint={checkpoint.BACKSTOP_PAGES}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                # a reader (Database.reader): a deferred BEGIN reads a WAL snapshot while a writer works
                conn.exec_driver_sql("BEGIN")
                return
            # BEGIN IMMEDIATE takes the write lock up front, avoiding SQLITE_BUSY deadlocks on lock upgrade; other
            # pnc-pki processes on the same file queue on the companion lock first (pki.store.write_lock).
            write_lock.acquire(conn)
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                write_lock.release(conn)
                raise

        @event.listens_for(engine, "connect")
        def _sqlite_no_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        if file_path is not None:
            write_lock.install(engine, file_path)
            checkpoint.register(file_path)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for in-memory databases and other engines)."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        return Path(url[len("sqlite:///"):].split("?", 1)[0])
    return None


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    command.upgrade(alembic_config(engine), "head")
