"""Bulk issuance writes: many write-ahead records in one INSERT, many finalisations in one transaction.

Plain dictionaries and prebuilt statements only. :mod:`pki.store.repo` builds a SQLModel object per record and
per audit entry, which costs about as much as the certificate's signature; a factory provisioning ten thousand
stations cannot pay that twice per certificate. The guarantees are those of :func:`repo.reserve_certificates` and
:func:`repo.finalise_certificates`: a record is pending before anything is signed, and it becomes valid in the
same transaction as its audit entry, all or none.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import col

from pki.errors import StorageUnavailable
from pki.store import audit_chain
from pki.store.models import Certificate, CertStatus
from pki.store.repo import _FINALISE, Database, DuplicateSerial

_ABORT = (
    update(Certificate)
    .where(col(Certificate.id) == bindparam("record_id"), col(Certificate.status) == CertStatus.PENDING)
    .values(status=CertStatus.ABORTED, failure=bindparam("failure"))
)
_INSERT = insert(Certificate)
_IDS = (select(col(Certificate.id), col(Certificate.ca_id), col(Certificate.serial))
        .where(col(Certificate.ca_id).in_(bindparam("ca_ids", expanding=True)),
               col(Certificate.serial).in_(bindparam("serials", expanding=True))))
_IN_LIMIT = 500  # serials per SELECT: well inside SQLite's and PostgreSQL's parameter limits
_RESERVED_COLUMNS = ("ca_id", "serial", "kind", "generation", "status", "subject", "key_algorithm", "not_before",
                     "not_after", "owner", "actor", "request_id", "created_at")


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


def reserve(db: Database, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Store pending records (``_RESERVED_COLUMNS``) in one statement; their ids in order.

    A taken (issuer, serial) pair raises :class:`DuplicateSerial` and keeps none of them. The ids come from one
    SELECT by (issuer, serial) rather than INSERT ... RETURNING: SQLite can only promise RETURNING's order row by
    row, and a statement per row is what this module exists to avoid."""
    values = [{name: row[name] for name in _RESERVED_COLUMNS} for row in rows]
    if not values:
        return []
    try:
        with _transaction(db, "write-ahead records") as conn:
            conn.execute(_INSERT, values)
            found: dict[tuple[int, str], int] = {}
            for start in range(0, len(values), _IN_LIMIT):
                part = values[start:start + _IN_LIMIT]
                keys = [(v["ca_id"], v["serial"]) for v in part]
                for row in conn.execute(_IDS, {"ca_ids": sorted({k[0] for k in keys}),
                                               "serials": [k[1] for k in keys]}):
                    found[(int(row.ca_id), str(row.serial))] = int(row.id)
    except IntegrityError as exc:
        raise DuplicateSerial(str(exc.orig)) from None
    try:
        return [found[(int(v["ca_id"]), str(v["serial"]))] for v in values]
    except KeyError:
        raise StorageUnavailable("the database did not return the ids of the records reserved") from None


def finalise(db: Database, changes: Sequence[dict[str, Any]], audit: list[dict[str, Any]]) -> None:
    """Make reserved records valid (``record_id``, ``der``, ``fingerprint_sha256``, ``issued_at``) and chain the
    audit rows, in one transaction. A record that is no longer pending fails the whole transaction."""
    params = [{"status": CertStatus.VALID, "subject_ca_id": None, **c} for c in changes]
    with _transaction(db, "finalisation") as conn:
        if params:
            done = conn.execute(_FINALISE, params).rowcount
            if done != len(params):
                raise StorageUnavailable(f"{len(params) - done} of {len(params)} reserved records were no longer "
                                         "pending; none of the batch was made valid")
        audit_chain.append_rows(conn, audit)


def abort(db: Database, record_ids: Sequence[int], reason: str) -> None:
    """Mark reserved records that will never be signed (or whose finalisation failed) as aborted."""
    if record_ids:
        with _transaction(db, "abort") as conn:
            conn.execute(_ABORT, [{"record_id": i, "failure": reason[:512]} for i in record_ids])
