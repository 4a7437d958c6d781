"""Issuance writes on plain rows: write-ahead records and their finalisation, for one certificate or many.

Plain dictionaries and prebuilt statements only. Building a SQLModel object per record and per audit entry costs
about as much as the certificate's signature, and issuance pays it twice per certificate; a factory provisioning
ten thousand stations, or a fleet renewing at once over OCPP, cannot. Both issuance paths write through here: bulk
issuance (``pki.batch_issuance``) a chunk at a time, single issuance (``Authority.issue_from_csr``) through group
commit, so concurrent callers share these statements. The guarantees are the same for both: a record is pending
before anything is signed, and it becomes valid in the same transaction as its audit entry, all or none.

The ``*_on`` functions run inside the caller's transaction and let driver errors through (the single path's
callers map them to their own answers); :func:`reserve`, :func:`finalise` and :func:`abort` open their own
transaction and turn a database that is away into :class:`StorageUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import col

from pki.errors import StorageUnavailable
from pki.store import audit_chain
from pki.store.models import AuditEvent, Certificate, CertStatus
from pki.store.repo import Database, DuplicateSerial

Finalised = Callable[[Connection, Certificate], "AuditEvent | None"]

# Prebuilt statements: SQLAlchemy caches their compiled form, so the hot path pays no statement construction.
#
# The pending guard compares coalesce(status, '') rather than the column, so that only the primary key can find
# the row: on a table without statistics yet (a new deployment's first minute) PostgreSQL estimates one row for
# both "id = ?" and "status = 'pending'" and EXPLAIN showed it choosing the (status, not_after) index, which
# scans every pending row for each update.
_PENDING = func.coalesce(col(Certificate.status), "") == CertStatus.PENDING
_FINALISE = (
    update(Certificate)
    .where(col(Certificate.id) == bindparam("record_id"), _PENDING)
    .values(
        der=bindparam("der"), fingerprint_sha256=bindparam("fingerprint_sha256"), status=bindparam("status"),
        issued_at=bindparam("issued_at"), subject_ca_id=bindparam("subject_ca_id"),
    )
)
_ABORT = (
    update(Certificate)
    .where(col(Certificate.id) == bindparam("record_id"), _PENDING)
    .values(status=CertStatus.ABORTED, failure=bindparam("failure"))
)
_INSERT = insert(Certificate)
_INSERT_ONE = insert(Certificate).returning(col(Certificate.id))
_IDS = (select(col(Certificate.id), col(Certificate.ca_id), col(Certificate.serial))
        .where(col(Certificate.ca_id).in_(bindparam("ca_ids", expanding=True)),
               col(Certificate.serial).in_(bindparam("serials", expanding=True))))
# UPDATEs per executemany. psycopg pipelines an executemany; on a new TCP connection the first pipeline of 250
# finalising UPDATEs (~190 KB with the DER) stalled ~210 ms on the loopback — once per pooled connection, never
# over a Unix socket, never with slices of 100 or less (bench: the first chunk of every fresh connection took
# 225 ms instead of 18). Slices cost nothing measurable on SQLite or on PostgreSQL.
_UPDATE_SLICE = 64
_IN_LIMIT = 500  # serials per SELECT: well inside SQLite's and PostgreSQL's parameter limits
RESERVED_COLUMNS = ("ca_id", "serial", "kind", "generation", "status", "subject", "key_algorithm", "not_before",
                    "not_after", "owner", "actor", "request_id", "created_at")


@dataclass(frozen=True)
class Signed:
    """One reserved record's signed result on the single-issuance path, and what goes into its transaction.

    ``change`` holds the finalising UPDATE's parameters (``record_id``, ``der``, ``fingerprint_sha256``,
    ``issued_at``, ``subject_ca_id``), ``audit`` the issuance's audit row. ``also`` writes the caller's own
    consequence of the issuance (a contract now pointing at its certificate) in that transaction too: one commit
    instead of two, and never a valid certificate without it; the audit event it returns is chained right after
    the issuance's."""

    record: Certificate
    change: dict[str, Any]
    audit: dict[str, Any]
    also: Finalised | None = None


@contextmanager
def _transaction(db: Database, what: str) -> Iterator[Connection]:
    try:
        with db.engine.begin() as conn:
            yield conn
    except IntegrityError:
        raise
    except DBAPIError as exc:
        raise StorageUnavailable(f"the database did not accept the {what} ({type(exc.orig).__name__}); "
                                 "nothing of it was kept") from None


def reserve_on(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Store pending records (``RESERVED_COLUMNS``) with one INSERT; their ids in order.

    A taken (issuer, serial) pair raises :class:`DuplicateSerial` and, with the caller's transaction rolled
    back, keeps none of them. One row uses INSERT ... RETURNING; several get their ids from one SELECT by
    (issuer, serial): SQLite can only promise RETURNING's order row by row, and a statement per row is what this
    module exists to avoid."""
    values = [{name: row[name] for name in RESERVED_COLUMNS} for row in rows]
    try:
        if len(values) == 1:
            new_id = conn.execute(_INSERT_ONE, values[0]).scalar_one()
            if new_id is None:
                raise StorageUnavailable("the database did not return the id of the record reserved")
            return [new_id]
        if not values:
            return []
        conn.execute(_INSERT, values)
    except IntegrityError as exc:
        raise DuplicateSerial(str(exc.orig)) from None
    found: dict[tuple[int, str], int] = {}
    for start in range(0, len(values), _IN_LIMIT):
        part = values[start:start + _IN_LIMIT]
        keys = [(v["ca_id"], v["serial"]) for v in part]
        for row in conn.execute(_IDS, {"ca_ids": sorted({k[0] for k in keys}), "serials": [k[1] for k in keys]}):
            found[(int(row.ca_id), str(row.serial))] = int(row.id)
    try:
        return [found[(int(v["ca_id"]), str(v["serial"]))] for v in values]
    except KeyError:
        raise StorageUnavailable("the database did not return the ids of the records reserved") from None


def reserve(db: Database, rows: Sequence[dict[str, Any]]) -> list[int]:
    """:func:`reserve_on` in its own transaction."""
    if not rows:
        return []
    with _transaction(db, "write-ahead records") as conn:
        return reserve_on(conn, rows)


def reserve_rows(db: Database, rows: Sequence[dict[str, Any]]) -> list[int]:
    """:func:`reserve_on` in its own transaction, driver errors let through (the single-issuance path)."""
    with db.engine.begin() as conn:
        return reserve_on(conn, rows)


def finalise_on(conn: Connection, changes: Sequence[dict[str, Any]], audit: list[dict[str, Any]]) -> None:
    """Make reserved records valid and chain the audit rows. A record that is no longer pending raises
    :class:`StorageUnavailable`, which rolls the caller's transaction back: none of them is made valid."""
    params = [{"status": CertStatus.VALID, "subject_ca_id": None, **c} for c in changes]
    if params:
        done = sum(conn.execute(_FINALISE, params[at:at + _UPDATE_SLICE]).rowcount
                   for at in range(0, len(params), _UPDATE_SLICE))
        if done != len(params):
            raise StorageUnavailable(f"{len(params) - done} of {len(params)} reserved records were no longer "
                                     "pending; none of the batch was made valid")
    audit_chain.append_rows(conn, audit)


def finalise(db: Database, changes: Sequence[dict[str, Any]], audit: list[dict[str, Any]]) -> None:
    """:func:`finalise_on` in its own transaction."""
    with _transaction(db, "finalisation") as conn:
        finalise_on(conn, changes, audit)


def finalise_signed(db: Database, batch: Sequence[Signed]) -> list[Certificate]:
    """Make the single path's signed records valid in one transaction (group commit: one or many callers'),
    each audit row followed by its ``also`` event, chained in batch order; driver errors let through."""
    with db.engine.begin() as conn:
        params = [{"status": CertStatus.VALID, **s.change} for s in batch]
        done = conn.execute(_FINALISE, params if len(params) > 1 else params[0]).rowcount
        if done != len(params):
            raise LookupError(f"{len(params) - done} of {len(params)} certificate records were no longer pending")
        rows: list[dict[str, Any]] = []
        extra: list[tuple[AuditEvent, dict[str, Any]]] = []
        for s in batch:
            rows.append(s.audit)
            event = s.also(conn, s.record) if s.also is not None else None
            if event is not None:
                extra.append((event, audit_chain.row_of(event)))
                rows.append(extra[-1][1])
        audit_chain.append_rows(conn, rows)
    for event, row in extra:
        audit_chain.copy_chained(row, event)
    return [s.record for s in batch]


def abort(db: Database, record_ids: Sequence[int], reason: str) -> None:
    """Mark reserved records that will never be signed (or whose finalisation failed) as aborted."""
    if record_ids:
        with _transaction(db, "abort") as conn:
            conn.execute(_ABORT, [{"record_id": i, "failure": reason[:512]} for i in record_ids])
