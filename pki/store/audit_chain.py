"""The audit hash chain: canonical form of an entry, its hash, and the locked append.

``entry_hash = SHA-256(canonical JSON of {sequence, at, actor, action, target, outcome, request_id, details,
prev_hash})`` with sorted keys, no whitespace, UTF-8, and ``at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Anyone can
recompute it from an export (``pnc audit export``) without our code: the format is the specification.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlmodel import Session, select

from pki.store.models import AuditEvent
from pki.store.security_models import GENESIS_HASH, AuditChainHead

HASHED_FIELDS = ("sequence", "at", "actor", "action", "target", "outcome", "request_id", "details", "prev_hash")


def format_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_dict(event: AuditEvent) -> dict[str, Any]:
    """The hashed fields of an entry (plus ``entry_hash``), as exported."""
    return {
        "sequence": event.sequence,
        "at": format_time(event.at),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "entry_hash": event.entry_hash,
    }


def compute_hash(entry: dict[str, Any]) -> str:
    body = {k: entry.get(k) for k in HASHED_FIELDS}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def lock_head(session: Session) -> AuditChainHead:
    """Lock the chain head row for this transaction (PostgreSQL row lock; SQLite holds the write lock already)."""
    head = session.exec(select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()).first()
    if head is None:  # a database created without the 0004 migration's seed row
        head = AuditChainHead(id=1, sequence=0, entry_hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    return head


def append(session: Session, event: AuditEvent) -> AuditEvent:
    """Chain ``event`` onto the head inside the caller's transaction; the caller commits.

    Reading the head must not flush what the caller added before: its constraint errors (a duplicate EMAID, a
    renewal already requested) belong to the caller's commit, where it handles them."""
    with session.no_autoflush:
        head = lock_head(session)
    event.at = event.at.astimezone(dt.UTC) if event.at.tzinfo else event.at.replace(tzinfo=dt.UTC)
    event.sequence = head.sequence + 1
    event.prev_hash = head.entry_hash
    event.entry_hash = compute_hash(entry_dict(event))
    head.sequence = event.sequence
    head.entry_hash = event.entry_hash
    session.add(event)
    session.add(head)
    return event
