"""Group commit: concurrent callers' small write transactions share one transaction.

Issuance writes twice per certificate (the write-ahead record, then the signed DER with its audit entry), and on
a busy instance many threads do so at once: the REST thread pool, the OCPP signing pool, contract installations.
Each of those commits costs a round trip, a WAL write and, on SQLite, the database write lock; most of what a
commit costs does not grow with the number of rows in it. So callers queue their write, and whichever caller
finds no batch in progress becomes the leader: it takes everything queued (its own write first), runs it as one
transaction and hands the results back; the others wait and get theirs. A caller alone pays nothing but a lock.

The batch is all-or-nothing. When it fails, each write is run again on its own, so one caller's constraint error
(a duplicate serial, a contract conflict) is that caller's alone and everybody else's write still lands.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class _Slot(Generic[T, R]):
    __slots__ = ("done", "error", "item", "lead", "result", "settled")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = threading.Event()
        self.lead = False  # woken to lead the next batch rather than with a result
        self.result: R | None = None
        self.error: BaseException | None = None
        self.settled = False

    def settle(self, result: R | None = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.settled = result, error, True

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit(Generic[T, R]):
    """Batch ``run_one(item)`` calls from concurrent threads into ``run_batch(items)`` calls.

    ``run_batch`` must be all-or-nothing (one transaction) and return one result per item in order;
    ``run_one`` is the same write alone, used for a batch of one and to split a failed batch."""

    def __init__(self, run_one: Callable[[T], R], run_batch: Callable[[Sequence[T]], list[R]], *,
                 max_batch: int = 64) -> None:
        self._run_one = run_one
        self._run_batch = run_batch
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._busy = False
        self.batches = 0  # transactions run (for benchmarks and tests)
        self.items = 0
        self.splits = 0

    def submit(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            lead = not self._busy
            self._busy = True
        if not lead:
            slot.done.wait()
            if not slot.lead:
                return slot.outcome()
        self._lead()
        return slot.outcome()

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
        try:
            self._execute(batch)
        finally:
            for slot in batch:
                if not slot.settled:  # _execute itself broke (e.g. interrupted)
                    slot.settle(error=RuntimeError("group commit leader failed before this write ran"))
                slot.done.set()
            with self._lock:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.done.set()
                else:
                    self._busy = False

    def _execute(self, batch: list[_Slot[T, R]]) -> None:
        self.batches += 1
        self.items += len(batch)
        if len(batch) > 1:
            try:
                results = self._run_batch([s.item for s in batch])
            except Exception as exc:  # split it: each caller gets its own write's outcome
                self.splits += 1
                log.debug("batch of %d writes failed (%s); running each alone", len(batch), type(exc).__name__)
            else:
                for slot, result in zip(batch, results, strict=True):
                    slot.settle(result)
                return
        for slot in batch:
            try:
                slot.settle(self._run_one(slot.item))
            except Exception as exc:  # handed to the caller, raised in its own thread
                slot.settle(error=exc)
