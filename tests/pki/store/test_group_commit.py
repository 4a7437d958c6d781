"""Group commit: batching is invisible to callers except in speed — every caller gets its own write's outcome,
one caller's failure is its alone, and a batch of issuances leaves the same records and audit chain as one by one."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from pki.audit import AuditLog
from pki.authority import Authority
from pki.errors import PolicyViolation
from pki.keys.base import KeyManager
from pki.profiles import CertKind, Generation
from pki.store import bulk, repo
from pki.store.group_commit import GroupCommit
from pki.store.models import CertStatus
from tests.helpers import drain, make_csr, p256


class _Log:
    """A fake 'database': run_batch appends all items (all or nothing); both are slow, so callers pile up."""

    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.rows: list[int] = []
        self.batches: list[list[int]] = []
        self.fail_on = fail_on or set()
        self.lock = threading.Lock()

    def one(self, item: int) -> int:
        time.sleep(0.001)
        if item in self.fail_on:
            raise ValueError(f"item {item} violates a constraint")
        with self.lock:
            self.rows.append(item)
        return item * 10

    def batch(self, items: Sequence[int]) -> list[int]:
        time.sleep(0.002)
        if self.fail_on & set(items):
            raise ValueError("constraint violated somewhere in the batch")
        with self.lock:
            self.batches.append(list(items))
            self.rows.extend(items)
        return [i * 10 for i in items]


def _hammer(gc: GroupCommit[int, int], n: int, threads: int = 8) -> dict[int, int | Exception]:
    out: dict[int, int | Exception] = {}

    def call(item: int) -> None:
        try:
            out[item] = gc.submit(item)
        except ValueError as exc:
            out[item] = exc

    drain(range(n), call, threads)
    return out


def test_concurrent_callers_share_transactions_and_each_gets_its_own_result() -> None:
    store = _Log()
    gc = GroupCommit(store.one, store.batch)
    out = _hammer(gc, 400)
    assert out == {i: i * 10 for i in range(400)}
    assert sorted(store.rows) == list(range(400))  # each write exactly once
    assert gc.batches < 400 and max(len(b) for b in store.batches) > 1  # they really were batched
    assert all(len(b) <= gc.max_batch for b in store.batches)


def test_a_failing_write_fails_only_its_caller() -> None:
    bad = {7, 123, 250}
    store = _Log(fail_on=bad)
    gc = GroupCommit(store.one, store.batch)
    out = _hammer(gc, 300)
    for i in range(300):
        if i in bad:
            assert isinstance(out[i], ValueError) and str(i) in str(out[i])
        else:
            assert out[i] == i * 10
    assert sorted(store.rows) == sorted(set(range(300)) - bad)
    assert gc.splits >= 1


def test_a_lone_caller_runs_its_write_alone() -> None:
    store = _Log()
    gc = GroupCommit(store.one, store.batch)
    assert [gc.submit(i) for i in range(5)] == [0, 10, 20, 30, 40]
    assert store.batches == [] and gc.batches == 5  # run_one, no batch machinery


def test_a_leader_that_dies_still_wakes_everybody() -> None:
    """A BaseException (e.g. KeyboardInterrupt in the leader thread) must not leave followers waiting forever."""
    release = threading.Event()

    def one(item: int) -> int:
        if item == 0:
            release.wait(5)
            raise KeyboardInterrupt
        return item

    gc: GroupCommit[int, int] = GroupCommit(one, lambda items: [one(i) for i in items])
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = gc.submit(i)
        except BaseException as exc:  # the test records what each caller saw
            results[i] = exc

    leader = threading.Thread(target=call, args=(0,))
    leader.start()
    time.sleep(0.05)
    followers = [threading.Thread(target=call, args=(i,)) for i in (1, 2, 3)]
    for t in followers:
        t.start()
    time.sleep(0.05)
    release.set()
    for t in [leader, *followers]:
        t.join(timeout=10)
    assert isinstance(results[0], KeyboardInterrupt)
    # the followers queued behind the dead leader are served by the next one
    assert [results[i] for i in (1, 2, 3)] == [1, 2, 3]


def test_concurrent_issuance_batches_and_leaves_a_verifiable_record(pki: Authority, keys: KeyManager) -> None:
    csrs = [make_csr(p256(), CN=f"SN-GC-{i}", O="Test CPO") for i in range(48)]
    bad = make_csr(p256(), CN="SN-GC-bad")  # no O: refused by policy, in the middle of the crowd
    slow_batch = pki.reservations._run_batch

    def slower(records: Sequence[object]) -> list[object]:
        time.sleep(0.003)  # let callers pile up as they do under load
        return slow_batch(records)  # type: ignore[arg-type]

    pki.reservations._run_batch = slower  # type: ignore[assignment]
    serials: list[str] = []
    errors: list[Exception] = []

    def issue(pem: bytes) -> None:
        try:
            serials.append(pki.issue_from_csr(pem, CertKind.STATION_CLIENT).record.serial)
        except PolicyViolation as exc:
            errors.append(exc)

    drain([*csrs[:24], bad, *csrs[24:]], issue, 8)
    assert len(errors) == 1 and len(serials) == 48 == len(set(serials))
    assert pki.reservations.items > pki.reservations.batches  # some reservations shared a transaction
    for serial in serials:
        rec = pki.certificate_by_serial(serial)
        assert rec.status == CertStatus.VALID and rec.der is not None
    issued_events = [e for e in repo.list_audit(pki.db, limit=1000, action="certificate.issue")
                     if e.outcome == "success" and "SN-GC-" in (e.details or "")]
    assert len(issued_events) == 48
    assert AuditLog(pki.db, keys).verify().ok


def test_a_batch_with_a_duplicate_serial_keeps_nothing_and_is_split(pki: Authority) -> None:
    """Two reservations with the same serial in one batch: the transaction keeps neither, then each runs alone —
    the first is reserved, the second gets DuplicateSerial (on which the authority draws a new serial)."""
    from pki.store.group_commit import _Slot

    ca = pki.issuer_for(CertKind.STATION_CLIENT, Generation.OCPP)
    assert ca.id is not None

    def record() -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        return {"ca_id": ca.id, "serial": "abcdef", "kind": "station-client", "generation": "ocpp",
                "status": CertStatus.PENDING, "subject": "CN=x", "key_algorithm": "p256", "not_before": now,
                "not_after": now, "owner": None, "actor": "test", "request_id": None, "created_at": now}

    with pytest.raises(repo.DuplicateSerial):
        bulk.reserve_rows(pki.db, [record(), record()])
    assert repo.find_certificates_by_serial(pki.db, "abcdef") == []
    slots: list[_Slot[dict[str, Any], int]] = [_Slot(record()), _Slot(record())]
    pki.reservations._execute(slots)
    first, second = slots
    assert first.error is None and first.result is not None
    assert isinstance(second.error, repo.DuplicateSerial)
    assert [r.id for r in repo.find_certificates_by_serial(pki.db, "abcdef")] == [first.result]
