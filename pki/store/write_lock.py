"""One SQLite writer at a time across processes, handed over by the kernel instead of SQLite's sleep-and-retry.

SQLite serialises writers with a lock it only polls: a ``BEGIN IMMEDIATE`` that finds the database locked sleeps
1, 2, 5, 10 … ms between retries (``sqlite3_busy_timeout``), however short the holder's transaction. With several
pnc-pki worker processes on one database file (``pnc serve --workers N``) most transactions take well under a
millisecond, so a waiting writer sleeps far longer than the transaction it waits for and the second core buys
little. Here every pooled connection holds a descriptor of a companion file ``<db>-writer``; an exclusive
``flock(2)`` on it is taken before ``BEGIN IMMEDIATE`` and released after ``COMMIT``/``ROLLBACK``, so writers
queue in the kernel, which wakes the next one as soon as the lock is released.

The lock only schedules; correctness still rests on SQLite's own locking. Other SQLite clients (the ``sqlite3``
shell, a backup) do not take it and are covered by the busy timeout as before. A thread that already holds the
lock through one connection and begins on a second does not wait for itself: it skips the lock and falls back
to SQLite's busy timeout, exactly as without this module. A process that dies releases its locks with its
descriptors.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_FD = "pnc_writer_fd"
_HELD = "pnc_writer_held"


class _Held(threading.local):
    """Per thread: how many connections this thread holds the lock through. The box is kept in the connection's
    info, so a transaction committed by another thread than the one that began it still settles the right count."""

    def __init__(self) -> None:
        self.box = [0]


_held = _Held()


def lock_file(db_file: Path) -> Path:
    """The companion file whose lock queues the writers of ``db_file``."""
    return db_file.with_name(db_file.name + "-writer")


def install(engine: Engine, db_file: Path) -> None:
    """Make ``engine``'s write transactions queue on the companion lock of ``db_file``."""
    path = str(lock_file(db_file))

    @event.listens_for(engine, "connect")
    def _open(_dbapi_conn: Any, record: Any) -> None:
        record.info[_FD] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @event.listens_for(engine, "close")
    def _close(_dbapi_conn: Any, record: Any) -> None:
        _release(record.info)
        fd = record.info.pop(_FD, None)
        if fd is not None:
            os.close(fd)  # also drops a lock still held

    dialect = engine.dialect
    dialect.do_commit = _releasing(dialect.do_commit)  # type: ignore[method-assign,assignment]
    dialect.do_rollback = _releasing(dialect.do_rollback)  # type: ignore[method-assign,assignment]


def acquire(conn: Any) -> None:
    """Take the writer lock for the SQLAlchemy connection ``conn`` (called just before ``BEGIN IMMEDIATE``)."""
    info = conn.connection.info
    fd = info.get(_FD)
    box = _held.box
    if fd is None or info.get(_HELD) is not None or box[0]:
        return
    fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
    info[_HELD] = box
    box[0] += 1


def release(conn: Any) -> None:
    """Give the lock back without a commit or rollback (``BEGIN IMMEDIATE`` itself failed)."""
    _release(conn.connection.info)


def _release(info: dict[str, Any]) -> None:
    box = info.pop(_HELD, None)
    if box is not None:
        box[0] -= 1
        fd = info.get(_FD)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _releasing(end: Callable[[Any], None]) -> Callable[[Any], None]:
    """``end`` (the dialect's commit or rollback), then the writer lock — after, so the next writer's BEGIN
    never finds SQLite still locked."""
    def wrapped(dbapi_connection: Any) -> None:
        try:
            end(dbapi_connection)
        finally:
            try:
                info = dbapi_connection.info
            except (AttributeError, NotImplementedError):  # a raw or ad-hoc connection (dialect start-up)
                return
            _release(info)
    return wrapped
