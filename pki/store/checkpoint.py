"""SQLite WAL checkpoints in a background thread instead of inside a request's commit.

In WAL mode with ``synchronous=NORMAL`` a commit only appends to the WAL; the expensive part — copying pages
back into the database file and fsyncing it — happens at a checkpoint, which SQLite by default runs inside
whichever commit pushes the WAL past 1,000 pages. That request pays several milliseconds (the p99 of contract
installation was twice its p50 because of it). Here one daemon thread runs a PASSIVE checkpoint (never waits for
readers or writers) on every open database file twice a second, and connections keep a much larger automatic
threshold only as a backstop should the thread fall behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

INTERVAL_S = 0.5
BACKSTOP_PAGES = 10_000  # ~40 MB of WAL before a commit checkpoints by itself


class _Checkpointer:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # the registry
        self._io = threading.Lock()  # a connection in use; taken before _lock, never inside it
        self._files: dict[Path, int] = {}  # path -> number of engines using it
        self._conns: dict[Path, sqlite3.Connection] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self.passes = 0

    def register(self, path: Path) -> None:
        with self._lock:
            self._files[path] = self._files.get(path, 0) + 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pnc-sqlite-checkpoint", daemon=True)
                self._thread.start()

    def unregister(self, path: Path) -> None:
        with self._lock:
            n = self._files.get(path, 0) - 1
            if n > 0:
                self._files[path] = n
                return
        self._forget(path)

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._files.pop(path, None)
            conn = self._conns.pop(path, None)
        if conn is not None:
            with self._io:  # never close a connection the thread is checkpointing on (sqlite3 would crash)
                conn.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(INTERVAL_S)
            self._wake.clear()
            with self._lock:
                paths = list(self._files)
            for path in paths:
                self._checkpoint(path)
            self.passes += 1

    def _checkpoint(self, path: Path) -> None:
        try:
            if not path.exists():  # a deleted database (tests' temporary directories): forget it
                self._forget(path)
                return
            with self._io:
                with self._lock:
                    if path not in self._files:  # unregistered meanwhile
                        return
                    conn = self._conns.get(path)
                    if conn is None:
                        conn = self._conns[path] = sqlite3.connect(path, isolation_level=None, timeout=1,
                                                                   check_same_thread=False)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # busy, locked, I/O: the next pass (or the backstop) catches up
            log.debug("checkpoint of %s skipped: %s", path, exc)


_CHECKPOINTER = _Checkpointer()


def register(path: Path) -> None:
    """Checkpoint ``path`` in the background until :func:`unregister` (one call per engine)."""
    _CHECKPOINTER.register(path.resolve())


def unregister(path: Path) -> None:
    _CHECKPOINTER.unregister(path.resolve())
