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

from sqlalchemy import Connection, bindparam, insert, update
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


_HEAD_TABLE = AuditChainHead.__table__  # type: ignore[attr-defined]
_EVENT_TABLE = AuditEvent.__table__  # type: ignore[attr-defined]
_READ_HEAD = (select(_HEAD_TABLE.c.sequence, _HEAD_TABLE.c.entry_hash).where(_HEAD_TABLE.c.id == 1)
              .with_for_update())
_SEED_HEAD = insert(_HEAD_TABLE).values(id=1, sequence=0, entry_hash=GENESIS_HASH)
_MOVE_HEAD = (update(_HEAD_TABLE).where(_HEAD_TABLE.c.id == 1)
              .values(sequence=bindparam("new_sequence"), entry_hash=bindparam("new_hash")))
_INSERT_EVENT = insert(_EVENT_TABLE)
_EVENT_COLUMNS = tuple(c.name for c in _EVENT_TABLE.columns if c.name != "id")


def lock_head(conn: Connection) -> tuple[int, str]:
    """Lock the chain head row for this transaction (PostgreSQL row lock; SQLite holds the write lock already)
    and return its (sequence, entry_hash)."""
    row = conn.execute(_READ_HEAD).first()
    if row is None:  # a database created without the 0004 migration's seed row
        conn.execute(_SEED_HEAD)
        return 0, GENESIS_HASH
    return int(row[0]), str(row[1])


def append(session: Session, event: AuditEvent) -> AuditEvent:
    """Chain ``event`` onto the head inside the caller's transaction; the caller commits.

    SQL statements on the session's connection rather than ORM objects: every issuance appends one entry, and the
    unit of work cost more than the rest of the append. Executing on the connection also never flushes what the
    caller added before: its constraint errors (a duplicate EMAID, a renewal already requested) belong to the
    caller's commit, where it handles them."""
    return append_many(session.connection(), [event])[0]


def append_many(conn: Connection, events: list[AuditEvent]) -> list[AuditEvent]:
    """Chain ``events`` in order with one head lock and one head update (what a batch of issuances needs)."""
    if not events:
        return events
    rows = append_rows(conn, [row_of(event) for event in events])
    for event, row in zip(events, rows, strict=True):
        copy_chained(row, event)
    return events


def row_of(event: AuditEvent) -> dict[str, Any]:
    """The plain row :func:`append_rows` takes for an ORM event."""
    return {name: getattr(event, name) for name in _EVENT_COLUMNS}


def copy_chained(row: dict[str, Any], event: AuditEvent) -> None:
    """Give ``event`` the place in the chain its row got from :func:`append_rows`."""
    event.at, event.sequence = row["at"], row["sequence"]
    event.prev_hash, event.entry_hash = row["prev_hash"], row["entry_hash"]


def new_row(actor: str, action: str, outcome: str, at: dt.datetime, *, target: str | None = None,
            request_id: str | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """An audit entry as a plain row for :func:`append_rows` (``details`` as stored: sorted JSON, capped)."""
    return {"at": at, "actor": actor, "action": action, "outcome": outcome, "target": target,
            "request_id": request_id,
            "details": json.dumps(details, sort_keys=True, default=str)[:4096] if details else None}


def append_rows(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chain plain rows (``actor``, ``action``, ``outcome``, ``at`` and the optional fields) in order, filling in
    ``sequence``, ``prev_hash`` and ``entry_hash``: the same entries as :func:`append_many` without building an
    ORM object per entry, which bulk issuance cannot afford."""
    if not rows:
        return rows
    sequence, prev = lock_head(conn)
    for row in rows:
        at = row["at"]
        row["at"] = at.astimezone(dt.UTC) if at.tzinfo else at.replace(tzinfo=dt.UTC)
        for name in _EVENT_COLUMNS:
            row.setdefault(name, None)
        sequence += 1
        row["sequence"], row["prev_hash"] = sequence, prev
        body = {k: row[k] for k in HASHED_FIELDS}
        body["at"] = format_time(row["at"])
        row["entry_hash"] = prev = compute_hash(body)
    conn.execute(_INSERT_EVENT, rows)
    conn.execute(_MOVE_HEAD, {"new_sequence": sequence, "new_hash": prev})
    return rows
