"""Repository functions for revocation, OCSP responses, OCSP signers and CRLs.

Like :mod:`pki.store.repo`, each function opens its own short transaction. Revocation is one transaction that
changes the certificate row, invalidates ("stale") its pre-signed OCSP responses and writes the audit event, so
there is no moment in which the database says revoked while a shared response row still says good.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from pki.store import audit_chain
from pki.store.models import (
    AuditEvent,
    CaStatus,
    Certificate,
    CertificateAuthority,
    CertStatus,
    IssuerHash,
)
from pki.store.ocsp_models import CrlRecord, OcspResponseRecord, OcspSigner
from pki.store.repo import Database

STALE = "stale"


@dataclass(frozen=True)
class CertStatusRow:
    """What OCSP needs to know about one certificate (no DER, no subject: cheap to load in bulk)."""

    ca_id: int
    serial: str
    status: str
    revoked_at: dt.datetime | None
    reason: str | None
    not_after: dt.datetime


# --- revocation --------------------------------------------------------------------------------------------


def set_revocation(db: Database, cert_id: int, *, status: str, revoked_at: dt.datetime | None, reason: str | None,
                   audit: AuditEvent, now: dt.datetime, ca_status: str | None = None,
                   expect: tuple[str, str | None]) -> Certificate | None:
    """Change a certificate's revocation state if it is still ``expect`` = (status, reason); else return None.

    The compare-and-set makes concurrent revocations of one certificate safe: exactly one wins, the other re-reads
    and sees the result. Marks the certificate's OCSP responses stale; when ``ca_status`` is given (the certificate
    is a CA's own), the CA row changes in the same transaction.
    """
    with db.session() as s:
        rec = s.get(Certificate, cert_id)
        if rec is None or (rec.status, rec.revocation_reason) != expect:
            return None
        rec.status = status
        rec.revoked_at = revoked_at
        rec.revocation_reason = reason
        s.add(rec)
        s.execute(
            update(OcspResponseRecord)
            .where(col(OcspResponseRecord.ca_id) == rec.ca_id, col(OcspResponseRecord.serial) == rec.serial)
            .values(cert_status=STALE, der=None, updated_at=now)
        )
        if ca_status is not None and rec.subject_ca_id is not None:
            ca = s.get(CertificateAuthority, rec.subject_ca_id)
            if ca is not None:
                ca.status = ca_status
                s.add(ca)
        audit_chain.append(s, audit)  # tamper-evident: chained under the head-row lock, same transaction
        s.commit()
        s.refresh(rec)
        return rec


def stale_responses_of_issuer(db: Database, ca_id: int, now: dt.datetime) -> int:
    """Invalidate every pre-signed response of certificates issued by ``ca_id`` (its own status changed)."""
    with db.session() as s:
        result = s.execute(
            update(OcspResponseRecord)
            .where(col(OcspResponseRecord.ca_id) == ca_id, col(OcspResponseRecord.cert_status) != STALE)
            .values(cert_status=STALE, der=None, updated_at=now)
        )
        s.commit()
        return int(getattr(result, "rowcount", 0) or 0)


def revoked_ca_ids(db: Database) -> dict[int, tuple[dt.datetime | None, str | None]]:
    """CAs whose own certificate is revoked: ca id -> (revocation time, reason)."""
    with db.session() as s:
        q = (
            sa_select(col(CertificateAuthority.id), col(Certificate.revoked_at), col(Certificate.revocation_reason))
            .join(Certificate, col(Certificate.id) == col(CertificateAuthority.certificate_id))
            .where(col(Certificate.status) == CertStatus.REVOKED)
        )
        return {int(i): (at, reason) for i, at, reason in s.execute(q).all() if i is not None}


def cert_status_rows(db: Database, *, ca_id: int | None = None, not_after_min: dt.datetime | None = None,
                     revoked_only: bool = False) -> list[CertStatusRow]:
    with db.session() as s:
        q = sa_select(col(Certificate.ca_id), col(Certificate.serial), col(Certificate.status),
                      col(Certificate.revoked_at), col(Certificate.revocation_reason), col(Certificate.not_after))
        if revoked_only:
            q = q.where(col(Certificate.status) == CertStatus.REVOKED)
        else:
            q = q.where(col(Certificate.status).in_([CertStatus.VALID, CertStatus.REVOKED]))
        if ca_id is not None:
            q = q.where(col(Certificate.ca_id) == ca_id)
        if not_after_min is not None:
            q = q.where(col(Certificate.not_after) >= not_after_min)
        return [CertStatusRow(*row) for row in s.execute(q).all()]


def cert_status_row(db: Database, ca_id: int, serial: str) -> CertStatusRow | None:
    with db.session() as s:
        q = sa_select(col(Certificate.ca_id), col(Certificate.serial), col(Certificate.status),
                      col(Certificate.revoked_at), col(Certificate.revocation_reason), col(Certificate.not_after))
        q = q.where(col(Certificate.ca_id) == ca_id, col(Certificate.serial) == serial)
        row = s.execute(q).first()
        return CertStatusRow(*row) if row else None


def all_issuer_hashes(db: Database) -> list[IssuerHash]:
    with db.session() as s:
        return list(s.exec(select(IssuerHash)).all())


def cas_with_status(db: Database) -> list[CertificateAuthority]:
    with db.session() as s:
        return list(s.exec(select(CertificateAuthority).where(
            col(CertificateAuthority.status).in_([CaStatus.ACTIVE, CaStatus.RETIRED, CaStatus.REVOKED]))).all())


# --- OCSP signers ------------------------------------------------------------------------------------------


def add_signer(db: Database, signer: OcspSigner) -> OcspSigner:
    with db.session() as s:
        s.add(signer)
        s.commit()
        s.refresh(signer)
        return signer


def newest_signers(db: Database) -> dict[int, OcspSigner]:
    """The newest signer per CA (several instances may each have issued one; the newest wins everywhere)."""
    with db.session() as s:
        rows = s.exec(select(OcspSigner).order_by(col(OcspSigner.not_after), col(OcspSigner.id))).all()
        return {r.ca_id: r for r in rows}


def get_signer(db: Database, signer_id: int) -> OcspSigner | None:
    with db.session() as s:
        return s.get(OcspSigner, signer_id)


# --- pre-signed responses ----------------------------------------------------------------------------------


def upsert_responses(db: Database, rows: Sequence[dict[str, Any]], *,
                     unless_changed_after: dt.datetime | None = None) -> set[tuple[int, str, str]]:
    """Insert or replace responses by (ca_id, serial, hash_algorithm); returns the keys actually written.

    ``unless_changed_after``: leave a row alone if it was written after this moment. The refresher and on-demand
    signing pass the time at which they read the certificate's status, so a response signed from an older status
    can never overwrite the one a concurrent revocation just stored (a wrong "good").
    """
    if not rows:
        return set()
    table = OcspResponseRecord.__table__  # type: ignore[attr-defined]
    dialect = db.engine.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    written: set[tuple[int, str, str]] = set()
    # One statement with bound parameters, executed for many rows: SQLAlchemy compiles and caches it once, where a
    # 500-row multi-VALUES insert was compiled anew for every batch (over half of a refresh pass's time).
    stmt = insert(table)
    upsert = stmt.on_conflict_do_update(
        index_elements=["ca_id", "serial", "hash_algorithm"],
        set_={c: getattr(stmt.excluded, c) for c in (
            "cert_status", "der", "this_update", "next_update", "produced_at", "signer_id", "updated_at")},
        where=(table.c.updated_at <= unless_changed_after) if unless_changed_after is not None else None,
    ).returning(table.c.ca_id, table.c.serial, table.c.hash_algorithm)
    with db.session() as s:
        for start in range(0, len(rows), 500):
            result = s.connection().execute(upsert, list(rows[start:start + 500]))
            written.update((int(r[0]), str(r[1]), str(r[2])) for r in result.all())
        s.commit()
    return written


def responses_updated_since(db: Database, since: dt.datetime, *, limit: int = 50_000) -> list[OcspResponseRecord]:
    with db.session() as s:
        q = (select(OcspResponseRecord).where(col(OcspResponseRecord.updated_at) > since)
             .order_by(col(OcspResponseRecord.updated_at)).limit(limit))
        return list(s.exec(q).all())


def response_changes_since(db: Database, since: dt.datetime, *, limit: int = 200_000
                           ) -> list[tuple[int, str, str, str, dt.datetime]]:
    """Light poll: (ca_id, serial, algorithm, cert_status, updated_at) of rows changed after ``since``, no DER."""
    with db.session() as s:
        q = (sa_select(col(OcspResponseRecord.ca_id), col(OcspResponseRecord.serial),
                       col(OcspResponseRecord.hash_algorithm), col(OcspResponseRecord.cert_status),
                       col(OcspResponseRecord.updated_at))
             .where(col(OcspResponseRecord.updated_at) > since).limit(limit))
        return [(r[0], r[1], r[2], r[3], r[4]) for r in s.execute(q).all()]


def get_response(db: Database, ca_id: int, serial: str, algorithm: str) -> OcspResponseRecord | None:
    with db.session() as s:
        q = select(OcspResponseRecord).where(OcspResponseRecord.ca_id == ca_id, OcspResponseRecord.serial == serial,
                                             OcspResponseRecord.hash_algorithm == algorithm)
        return s.exec(q).first()


def response_meta(db: Database) -> list[tuple[int, str, str, str, dt.datetime, dt.datetime, int | None]]:
    """(ca_id, serial, algorithm, cert_status, this_update, next_update, signer_id) of every stored response."""
    with db.session() as s:
        q = sa_select(col(OcspResponseRecord.ca_id), col(OcspResponseRecord.serial),
                      col(OcspResponseRecord.hash_algorithm), col(OcspResponseRecord.cert_status),
                      col(OcspResponseRecord.this_update), col(OcspResponseRecord.next_update),
                      col(OcspResponseRecord.signer_id))
        return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in s.execute(q).all()]


# --- CRLs --------------------------------------------------------------------------------------------------


def add_crl(db: Database, record: CrlRecord) -> CrlRecord:
    """Store a CRL; raises IntegrityError if another instance took this number first (caller re-signs)."""
    with db.session() as s:
        s.add(record)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            raise
        s.refresh(record)
        return record


def latest_crl(db: Database, ca_id: int) -> CrlRecord | None:
    with db.session() as s:
        q = select(CrlRecord).where(CrlRecord.ca_id == ca_id).order_by(col(CrlRecord.number).desc()).limit(1)
        return s.exec(q).first()


def latest_crl_number(db: Database, ca_id: int) -> int:
    rec = latest_crl(db, ca_id)
    return rec.number if rec else 0
