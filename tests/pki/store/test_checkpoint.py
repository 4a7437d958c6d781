"""Background WAL checkpoints: commits no longer checkpoint (only past a large backstop), the thread does, and a
disposed or deleted database is let go."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from pki.store import checkpoint
from pki.store.repo import Database


def _wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_writes_are_checkpointed_by_the_background_thread(tmp_path: Path) -> None:
    path = tmp_path / "pnc.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == checkpoint.BACKSTOP_PAGES
            conn.execute(text("CREATE TABLE blob (id INTEGER PRIMARY KEY, data BLOB)"))
        for _ in range(30):  # ~1,500 pages of WAL: past SQLite's default threshold, below the backstop
            with db.engine.begin() as conn:
                conn.execute(text("INSERT INTO blob (data) VALUES (:d)"), [{"d": b"x" * 4000}] * 50)
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size > 1000 * 4096  # the commits themselves did not checkpoint

        # until a checkpoint copies them the pages live only in the WAL; the commits did not (backstop above), so
        # the database file grows only when the background thread runs
        assert _wait_for(lambda: path.stat().st_size > 1400 * 4096)
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM blob")).scalar() == 1500
    finally:
        db.dispose()
    assert path.resolve() not in checkpoint._CHECKPOINTER._files


def test_a_deleted_database_is_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    db = Database(f"sqlite:///{path}")
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    db.engine.dispose()  # connections closed, but never unregistered through Database.dispose()
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    assert _wait_for(lambda: path.resolve() not in checkpoint._CHECKPOINTER._files)


def test_in_memory_and_server_databases_are_not_registered() -> None:
    from pki.store.db import sqlite_file

    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql+psycopg://u@h/db") is None
    assert sqlite_file("sqlite:///var/pnc.db?timeout=5") == Path("var/pnc.db")
