"""The SQLite writer lock (pki.store.write_lock): held exactly for a write transaction, handed over across
processes as soon as the holder commits (SQLite's own busy handler would sleep up to 100 ms between retries)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from pki.store.db import make_engine
from pki.store.write_lock import lock_file

ROOT = Path(__file__).resolve().parents[3]


def _locked(path: Path) -> bool:
    """Whether another descriptor holds the lock (probed without waiting)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's own lock
    return False


def test_held_for_the_transaction_and_released_by_commit_rollback_and_close(tmp_path: Path) -> None:
    db_file = tmp_path / "t.db"
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            assert _locked(lock_file(db_file))
        assert not _locked(lock_file(db_file))  # commit
        conn = engine.connect()
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert _locked(lock_file(db_file))
        conn.rollback()
        assert not _locked(lock_file(db_file))  # rollback
        conn.execute(text("INSERT INTO t VALUES (2)"))
        conn.close()  # returned to the pool mid-transaction: the pool's reset rolls back
        assert not _locked(lock_file(db_file))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
    finally:
        engine.dispose()


def test_a_thread_holding_the_lock_does_not_wait_for_itself(tmp_path: Path) -> None:
    """A second connection begun by the holder's own thread reads (SQLite WAL: readers are not blocked by the
    lock SQLite itself keeps) instead of hanging on the lock its first connection holds."""
    db_file = tmp_path / "t.db"
    engine = make_engine(f"sqlite:///{db_file}", pool_size=2)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        outer = engine.connect()
        outer.execute(text("INSERT INTO t VALUES (1)"))
        raw = outer.connection.dbapi_connection
        assert raw is not None
        from pki.store import write_lock

        inner = engine.connect()
        t0 = time.monotonic()
        write_lock.acquire(inner)  # what the begin event does first: returns at once, takes nothing
        assert time.monotonic() - t0 < 0.5
        assert not inner.connection.info.get(write_lock._HELD)
        inner.close()
        outer.commit()
        outer.close()
        assert not _locked(lock_file(db_file))
    finally:
        engine.dispose()


HOLDER = textwrap.dedent("""
    import sys, time
    from sqlalchemy import text
    from pki.store.db import make_engine
    engine = make_engine("sqlite:///" + sys.argv[1])
    for _ in range(int(sys.argv[2])):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            print("holding", flush=True)
            time.sleep(0.54)
            committing = time.time()  # stamped before the commit: the waiter cannot start before it
        print(f"released {committing:.6f}", flush=True)
        time.sleep(0.3)
    engine.dispose()
""")


@pytest.mark.parametrize("rounds", [3])
def test_another_process_gets_the_database_as_soon_as_the_holder_commits(tmp_path: Path, rounds: int) -> None:
    """SQLite's busy handler retries after 1, 2, 5, … ms, at 328 ms and then every 100 ms: a writer that
    started waiting when the holder began would retry at ~528 and ~628 ms, so without the lock it starts ~85 ms
    after a release at 540 ms; with the lock the kernel wakes it at once."""
    db_file = tmp_path / "t.db"
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_file), str(rounds)], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None
        delays = []
        for _ in range(rounds):
            assert holder.stdout.readline().strip() == "holding"
            with engine.begin() as conn:
                started = time.time()
                conn.execute(text("INSERT INTO t VALUES (2)"))
            released = float(holder.stdout.readline().split()[1])
            delays.append(started - released)
        assert holder.wait(timeout=30) == 0
        assert all(d >= 0 for d in delays), delays  # it did wait for the holder
        assert max(delays) < 0.04, delays
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2 * rounds
    finally:
        engine.dispose()


def test_a_reader_neither_waits_for_nor_takes_the_writer_lock(tmp_path: Path) -> None:
    """Database.reader begins DEFERRED: while a writer of another process holds the database, a lookup reads the
    last committed snapshot at once, and takes no lock a writer would queue behind."""
    from pki.store.repo import Database

    db_file = tmp_path / "t.db"
    db = Database(f"sqlite:///{db_file}")
    try:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_file), "1"], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"  # its INSERT is not committed yet
        t0 = time.monotonic()
        with db.reader() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
        assert time.monotonic() - t0 < 0.3  # the holder keeps the database for 0.54 s
        assert holder.stdout.readline().startswith("released")
        assert holder.wait(timeout=30) == 0
        with db.reader() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2
    finally:
        db.dispose()


def test_a_transaction_ended_by_another_thread_settles_the_beginning_threads_count(tmp_path: Path) -> None:
    """Begun in one thread, committed in another (a session handed to a thread pool): afterwards both threads
    take the lock again for their next transactions."""
    import threading

    db_file = tmp_path / "t.db"
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn = engine.connect()
        conn.execute(text("INSERT INTO t VALUES (1)"))
        seen: list[bool] = []

        def finish_and_write() -> None:
            conn.commit()
            conn.close()
            with engine.begin() as other:
                other.execute(text("INSERT INTO t VALUES (2)"))
                seen.append(_locked(lock_file(db_file)))

        worker = threading.Thread(target=finish_and_write)
        worker.start()
        worker.join(10)
        with engine.begin() as again:
            again.execute(text("INSERT INTO t VALUES (3)"))
            seen.append(_locked(lock_file(db_file)))
        assert seen == [True, True]
    finally:
        engine.dispose()
