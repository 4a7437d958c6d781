"""Tamper-evident audit log: every kind of tampering an attacker with database access could try is detected."""

from __future__ import annotations

import hashlib
import io
import json
import threading

import pytest
from sqlalchemy import text

from pki.audit import AuditLog, verify_export
from pki.keys.base import KeyManager
from pki.store import repo
from pki.store.audit_chain import compute_hash, entry_dict
from pki.store.repo import Database


def _fill(db: Database, n: int = 6) -> None:
    for i in range(n):
        repo.add_audit(db, repo.audit_event(f"actor{i}", "test.action", "success", target=f"t{i}",
                                            details={"i": i, "text": "Grüße"}))


def _kinds(log: AuditLog) -> set[tuple[int | None, str]]:
    return {(p.sequence, p.kind) for p in log.verify().problems}


@pytest.fixture
def log(db: Database, keys: KeyManager) -> AuditLog:
    return AuditLog(db, keys)


def test_chain_is_linked_and_independently_recomputable(db: Database, log: AuditLog) -> None:
    _fill(db)
    rows = repo.list_audit(db)
    assert [r.sequence for r in rows] == list(range(1, 7))
    prev = "0" * 64
    for r in rows:
        # recompute with the documented recipe, not with our helper
        body = {"sequence": r.sequence, "at": r.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "actor": r.actor,
                "action": r.action, "target": r.target, "outcome": r.outcome, "request_id": r.request_id,
                "details": r.details, "prev_hash": prev}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False).encode()).hexdigest()
        assert r.prev_hash == prev and r.entry_hash == digest
        prev = digest
    result = log.verify()
    assert result.ok and result.entries == 6 and result.last_sequence == 6


def test_concurrent_writers_do_not_fork_the_chain(db: Database, log: AuditLog) -> None:
    def work(i: int) -> None:
        for j in range(15):
            repo.add_audit(db, repo.audit_event(f"w{i}", "test.concurrent", "success", target=str(j)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    rows = repo.list_audit(db, limit=1000)
    assert [r.sequence for r in rows] == list(range(1, 91))
    assert log.verify().ok


def test_edited_entry_is_detected(db: Database, log: AuditLog) -> None:
    _fill(db)
    with db.engine.begin() as c:
        c.execute(text("UPDATE audit_event SET outcome='failure' WHERE sequence=3"))
    assert (3, "edited") in _kinds(log)


def test_deleted_entry_is_detected(db: Database, log: AuditLog) -> None:
    _fill(db)
    with db.engine.begin() as c:
        c.execute(text("DELETE FROM audit_event WHERE sequence=3"))
    kinds = _kinds(log)
    assert (4, "gap") in kinds and (4, "link") in kinds


def test_reordered_entries_are_detected(db: Database, log: AuditLog) -> None:
    _fill(db)
    with db.engine.begin() as c:  # swap the positions of entries 2 and 4
        c.execute(text("UPDATE audit_event SET sequence=-1 WHERE sequence=2"))
        c.execute(text("UPDATE audit_event SET sequence=2 WHERE sequence=4"))
        c.execute(text("UPDATE audit_event SET sequence=4 WHERE sequence=-1"))
    kinds = _kinds(log)
    assert {(2, "edited"), (2, "link"), (4, "edited"), (4, "link")} <= kinds


def test_truncated_tail_is_detected(db: Database, log: AuditLog) -> None:
    _fill(db)
    with db.engine.begin() as c:
        c.execute(text("DELETE FROM audit_event WHERE sequence>=5"))
    assert (6, "truncated") in _kinds(log)


def test_unchained_insert_is_detected(db: Database, log: AuditLog) -> None:
    _fill(db, 2)
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO audit_event (at, actor, action, outcome) "
                       "VALUES ('2026-01-01 00:00:00', 'mallory', 'certificate.issue', 'success')"))
    assert (None, "unchained") in _kinds(log)


def test_consistent_rewrite_is_caught_by_the_signed_checkpoint(db: Database, log: AuditLog) -> None:
    _fill(db)
    cp = log.checkpoint()
    assert cp is not None and cp.sequence == 7  # 6 entries + the audit key generation
    assert log.checkpoint() is None  # nothing new
    assert log.verify().checkpoints_verified == 1
    # The attacker edits entry 2 and recomputes every later hash and the head: the chain alone looks fine.
    events = repo.list_audit(db, limit=100)
    prev = events[0].entry_hash
    with db.engine.begin() as c:
        for ev in events[1:]:
            d = entry_dict(ev)
            if ev.sequence == 2:
                d["outcome"] = "failure"
            d["prev_hash"] = prev
            new = compute_hash(d)
            c.execute(text("UPDATE audit_event SET outcome=:o, prev_hash=:p, entry_hash=:h WHERE sequence=:s"),
                      {"o": d["outcome"], "p": prev, "h": new, "s": ev.sequence})
            prev = new
        c.execute(text("UPDATE audit_chain_head SET entry_hash=:h"), {"h": prev})
    problems = log.verify().problems
    assert [p.kind for p in problems] == ["checkpoint-mismatch"]


def test_forged_checkpoint_signature_is_detected(db: Database, log: AuditLog) -> None:
    _fill(db)
    log.checkpoint()
    with db.engine.begin() as c:
        c.execute(text("UPDATE audit_checkpoint SET entry_hash=:h"), {"h": "ab" * 32})
    assert "checkpoint-signature" in {p.kind for p in log.verify().problems}


def test_export_is_json_lines_and_verifies_offline(db: Database, log: AuditLog) -> None:
    _fill(db)
    log.checkpoint()
    buf = io.StringIO()
    n = log.export(buf)
    lines = buf.getvalue().splitlines()
    assert n == 7 and len(lines) == 7 + 1 + 1
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert verify_export(lines, [log.public_key()]).ok
    tampered = [line.replace('"actor3"', '"mallory"') for line in lines]
    assert not verify_export(tampered, [log.public_key()]).ok
    dropped = lines[:2] + lines[3:]
    assert not verify_export(dropped, [log.public_key()]).ok
    # an untrusted key does not validate the checkpoint
    from cryptography.hazmat.primitives.asymmetric import ec
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert {p.kind for p in verify_export(lines, [other]).problems} == {"checkpoint-signature"}
