"""Repository functions: the only place that builds queries.

Every function takes a :class:`Database` and opens its own short transaction, so callers cannot hold a write lock
across a signature (SQLite has one writer; PostgreSQL rows stay unlocked while we sign).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from pki.store.db import make_engine, migrate
from pki.store.models import (
    ApiToken,
    AuditEvent,
    Certificate,
    CertificateAuthority,
    CertStatus,
    IssuerHash,
)


class DuplicateSerial(Exception):
    """The (issuer, serial) pair is taken; the caller draws a new serial."""


class Database:
    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    def dispose(self) -> None:
        self.engine.dispose()


# --- certificate authorities -------------------------------------------------------------------------------


def add_ca(db: Database, ca: CertificateAuthority) -> CertificateAuthority:
    with db.session() as s:
        s.add(ca)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            raise
        s.refresh(ca)
        return ca


def update_ca(db: Database, ca_id: int, **changes: Any) -> CertificateAuthority:
    with db.session() as s:
        ca = s.get(CertificateAuthority, ca_id)
        if ca is None:
            raise LookupError(ca_id)
        for key, value in changes.items():
            setattr(ca, key, value)
        s.add(ca)
        s.commit()
        s.refresh(ca)
        return ca


def get_ca(db: Database, ca_id: int) -> CertificateAuthority | None:
    with db.session() as s:
        return s.get(CertificateAuthority, ca_id)


def get_ca_by_name(db: Database, name: str) -> CertificateAuthority | None:
    with db.session() as s:
        return s.exec(select(CertificateAuthority).where(CertificateAuthority.name == name)).first()


def list_cas(db: Database) -> list[CertificateAuthority]:
    with db.session() as s:
        return list(s.exec(select(CertificateAuthority).order_by(col(CertificateAuthority.id))).all())


def active_cas_of_kind(db: Database, kind: str, generation: str) -> list[CertificateAuthority]:
    with db.session() as s:
        q = (
            select(CertificateAuthority)
            .where(CertificateAuthority.kind == kind, CertificateAuthority.generation == generation)
            .where(CertificateAuthority.status == "active")
            .order_by(col(CertificateAuthority.id).desc())
        )
        return list(s.exec(q).all())


def add_issuer_hashes(db: Database, rows: Sequence[IssuerHash]) -> None:
    with db.session() as s:
        for row in rows:
            s.add(row)
        s.commit()


def find_issuers(db: Database, algorithm: str, name_hash: str, key_hash: str) -> list[int]:
    with db.session() as s:
        q = select(IssuerHash.ca_id).where(
            IssuerHash.algorithm == algorithm, IssuerHash.name_hash == name_hash, IssuerHash.key_hash == key_hash
        )
        return list(s.exec(q).all())


# --- certificates ------------------------------------------------------------------------------------------


# Prebuilt statements: SQLAlchemy caches their compiled form, so the hot path pays no statement construction.
_RESERVE = insert(Certificate).returning(col(Certificate.id))
_FINALISE = (
    update(Certificate)
    .where(col(Certificate.id) == bindparam("record_id"), col(Certificate.status) == CertStatus.PENDING)
    .values(
        der=bindparam("der"), fingerprint_sha256=bindparam("fingerprint_sha256"), status=bindparam("status"),
        issued_at=bindparam("issued_at"), subject_ca_id=bindparam("subject_ca_id"),
    )
)
_AUDIT = insert(AuditEvent)


def reserve_certificate(db: Database, record: Certificate) -> Certificate:
    """Write-ahead: store the pending record (serial reserved) before anything is signed.

    A Core INSERT ... RETURNING rather than the ORM unit of work: this is the issuance hot path.
    """
    values = record.model_dump(exclude={"id"})
    with db.engine.begin() as conn:
        try:
            new_id = conn.execute(_RESERVE, values).scalar_one()
        except IntegrityError as exc:
            raise DuplicateSerial(str(exc.orig)) from None
    if new_id is None:
        raise LookupError("the database returned no id for the reserved record")
    record.id = new_id
    return record


def finalise_certificate(db: Database, record: Certificate, *, der: bytes, fingerprint: str, issued_at: dt.datetime,
                         audit: AuditEvent | None = None, subject_ca_id: int | None = None) -> Certificate:
    """Mark the reserved record valid with its DER, in the same transaction as its audit event."""
    changes: dict[str, Any] = {"der": der, "fingerprint_sha256": fingerprint, "status": CertStatus.VALID,
                               "issued_at": issued_at, "subject_ca_id": subject_ca_id}
    with db.engine.begin() as conn:
        if conn.execute(_FINALISE, {**changes, "record_id": record.id}).rowcount != 1:
            raise LookupError(f"no pending certificate record {record.id}")
        if audit is not None:
            conn.execute(_AUDIT, audit.model_dump(exclude={"id"}))
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def abort_certificate(db: Database, record_id: int, reason: str) -> None:
    with db.session() as s:
        rec = s.get(Certificate, record_id)
        if rec is not None and rec.status == CertStatus.PENDING:
            rec.status = CertStatus.ABORTED
            rec.failure = reason[:512]
            s.add(rec)
            s.commit()


def abort_stale_pending(db: Database, older_than: dt.datetime) -> int:
    """Crash recovery: a pending record older than any signature could take was never released."""
    with db.session() as s:
        rows = s.exec(
            select(Certificate)
            .where(Certificate.status == CertStatus.PENDING, col(Certificate.created_at) < older_than)
        ).all()
        for rec in rows:
            rec.status = CertStatus.ABORTED
            rec.failure = "process stopped before the certificate was signed"
            s.add(rec)
        s.commit()
        return len(rows)


def get_certificate(db: Database, cert_id: int) -> Certificate | None:
    with db.session() as s:
        return s.get(Certificate, cert_id)


def get_certificate_by_serial(db: Database, ca_id: int, serial: str) -> Certificate | None:
    with db.session() as s:
        q = select(Certificate).where(Certificate.ca_id == ca_id, Certificate.serial == serial)
        return s.exec(q).first()


def find_certificates_by_serial(db: Database, serial: str) -> list[Certificate]:
    with db.session() as s:
        return list(s.exec(select(Certificate).where(Certificate.serial == serial)).all())


def get_certificate_by_fingerprint(db: Database, fingerprint: str) -> Certificate | None:
    with db.session() as s:
        return s.exec(select(Certificate).where(Certificate.fingerprint_sha256 == fingerprint)).first()


def list_certificates(
    db: Database,
    *,
    kind: str | None = None,
    status: str | None = None,
    ca_id: int | None = None,
    owner: str | None = None,
    expiring_before: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Certificate]:
    with db.session() as s:
        q = select(Certificate)
        if kind:
            q = q.where(Certificate.kind == kind)
        if status:
            q = q.where(Certificate.status == status)
        else:
            q = q.where(Certificate.status != CertStatus.PENDING, Certificate.status != CertStatus.ABORTED)
        if ca_id is not None:
            q = q.where(Certificate.ca_id == ca_id)
        if owner:
            q = q.where(Certificate.owner == owner)
        if expiring_before is not None:
            q = q.where(col(Certificate.not_after) <= expiring_before)
        q = q.order_by(col(Certificate.id)).offset(offset).limit(limit)
        return list(s.exec(q).all())


def count_certificates(db: Database, *, status: str | None = None) -> int:
    with db.session() as s:
        q = select(func.count()).select_from(Certificate)
        if status:
            q = q.where(Certificate.status == status)
        return int(s.exec(q).one())


# --- audit and tokens --------------------------------------------------------------------------------------


def audit_event(actor: str, action: str, outcome: str, *, target: str | None = None,
                request_id: str | None = None, details: dict[str, Any] | None = None) -> AuditEvent:
    return AuditEvent(
        actor=actor,
        action=action,
        outcome=outcome,
        target=target,
        request_id=request_id,
        details=json.dumps(details, sort_keys=True, default=str)[:4096] if details else None,
    )


def add_audit(db: Database, event: AuditEvent) -> None:
    with db.session() as s:
        s.add(event)
        s.commit()


def list_audit(db: Database, *, limit: int = 100, offset: int = 0) -> list[AuditEvent]:
    with db.session() as s:
        q = select(AuditEvent).order_by(col(AuditEvent.id)).offset(offset).limit(limit)
        return list(s.exec(q).all())


def add_token(db: Database, token: ApiToken) -> ApiToken:
    with db.session() as s:
        s.add(token)
        s.commit()
        s.refresh(token)
        return token


def get_token_by_hash(db: Database, token_hash: str) -> ApiToken | None:
    with db.session() as s:
        return s.exec(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()


def count_tokens(db: Database) -> int:
    with db.session() as s:
        return int(s.exec(select(func.count()).select_from(ApiToken)).one())
