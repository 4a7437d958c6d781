"""Repository functions: the only place that builds queries.

Every function takes a :class:`Database` and opens its own short transaction, so callers cannot hold a write lock
across a signature (SQLite has one writer; PostgreSQL rows stay unlocked while we sign).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import Connection, bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from pki.store import audit_chain, checkpoint
from pki.store.db import READ_ONLY, make_engine, migrate, sqlite_file
from pki.store.models import (
    ApiToken,
    AuditEvent,
    Certificate,
    CertificateAuthority,
    CertStatus,
    IssuerHash,
)
from pki.store.security_models import AuditChainHead, AuditCheckpoint, ClientCertificate

_Row = TypeVar("_Row", bound=SQLModel)
_Revocable = TypeVar("_Revocable", ApiToken, ClientCertificate)


class DuplicateSerial(Exception):
    """The (issuer, serial) pair is taken; the caller draws a new serial."""


class Database:
    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self._own_engine = engine is None
        self.engine = engine or make_engine(url)

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A connection for statements that only read.

        On SQLite every other transaction begins IMMEDIATE (the write lock, queued across processes); a reader
        begins DEFERRED and reads a WAL snapshot, so hot lookups (token, contract, certificate status) neither
        wait for nor delay the writers of this or another worker process. Writing through it is a bug: SQLite
        would have to upgrade the lock and may answer SQLITE_BUSY."""
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            yield conn

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    def dispose(self) -> None:
        self.engine.dispose()
        path = sqlite_file(self.url) if self._own_engine else None
        if path is not None:
            checkpoint.unregister(path)
            self._own_engine = False


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


def import_certificate(db: Database, record: Certificate, audit: AuditEvent) -> Certificate:
    """Store a certificate signed elsewhere (an offline root's), complete, with its audit event."""
    with db.session() as s:
        s.add(record)
        audit_chain.append(s, audit)
        try:
            s.commit()
        except IntegrityError as exc:
            s.rollback()
            raise DuplicateSerial(str(exc.orig)) from None
        s.refresh(record)
        return record


def set_certificate_revoked(db: Database, record_id: int, at: dt.datetime, reason: str,
                            audit: AuditEvent) -> Certificate:
    """Mark a valid certificate revoked, in the same transaction as its audit event."""
    with db.session() as s:
        rec = s.get(Certificate, record_id)
        if rec is None or rec.status != CertStatus.VALID:
            raise LookupError(f"no valid certificate record {record_id}")
        rec.status = CertStatus.REVOKED
        rec.revoked_at = at
        rec.revocation_reason = reason
        s.add(rec)
        audit_chain.append(s, audit)
        s.commit()
        s.refresh(rec)
        return rec


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


def certificates_by_id(db: Database, ids: Sequence[int]) -> dict[int, Certificate]:
    """Several records in one query (listings: one round trip instead of one per row)."""
    if not ids:
        return {}
    with db.session() as s:
        rows = s.exec(select(Certificate).where(col(Certificate.id).in_(list(ids)))).all()
        return {r.id: r for r in rows if r.id is not None}


def get_certificate_by_fingerprint(db: Database, fingerprint: str) -> Certificate | None:
    with db.session() as s:
        return s.exec(select(Certificate).where(Certificate.fingerprint_sha256 == fingerprint)).first()


def record_of(db: Database, cert: x509.Certificate) -> Certificate | None:
    """Our record of ``cert`` (by its SHA-256 fingerprint), or None when we did not issue it."""
    return get_certificate_by_fingerprint(db, cert.fingerprint(hashes.SHA256()).hex())


_STATUS_BY_FINGERPRINT = (select(col(Certificate.status))
                          .where(col(Certificate.fingerprint_sha256) == bindparam("fingerprint")))


def status_of(db: Database, cert: x509.Certificate) -> str | None:
    """Our record's status for ``cert`` (None when we did not issue it): one column, no ORM row — contract
    installation asks this for every OEM provisioning certificate it sees."""
    with db.reader() as conn:
        value = conn.execute(_STATUS_BY_FINGERPRINT,
                             {"fingerprint": cert.fingerprint(hashes.SHA256()).hex()}).scalar_one_or_none()
    return None if value is None else str(value)


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
    """Append to the hash chain (serialised on the chain-head row, so concurrent writers cannot fork it)."""
    with db.session() as s:
        audit_chain.append(s, event)
        s.commit()


def list_audit(db: Database, *, limit: int = 100, offset: int = 0, after_sequence: int | None = None,
               action: str | None = None) -> list[AuditEvent]:
    with db.session() as s:
        q = select(AuditEvent)
        if after_sequence is not None:
            q = q.where(col(AuditEvent.sequence) > after_sequence)
        if action:
            q = q.where(AuditEvent.action == action)
        q = q.order_by(col(AuditEvent.sequence), col(AuditEvent.id)).offset(offset).limit(limit)
        return list(s.exec(q).all())


def iter_audit(db: Database, *, batch: int = 1000) -> Iterator[AuditEvent]:
    """Every entry in chain order (unchained rows, which only tampering produces, come first), in batches."""
    with db.session() as s:
        for row in s.exec(select(AuditEvent).where(col(AuditEvent.sequence).is_(None)).order_by(col(AuditEvent.id))):
            yield row
    after = -1
    while True:
        with db.session() as s:
            rows = list(s.exec(select(AuditEvent).where(col(AuditEvent.sequence) > after)
                               .order_by(col(AuditEvent.sequence)).limit(batch)).all())
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].sequence or 0


def audit_head(db: Database) -> AuditChainHead:
    with db.session() as s:
        head = s.get(AuditChainHead, 1)
        return head if head is not None else AuditChainHead(id=1)


def add_checkpoint(db: Database, checkpoint: AuditCheckpoint) -> AuditCheckpoint:
    with db.session() as s:
        s.add(checkpoint)
        s.commit()
        s.refresh(checkpoint)
        return checkpoint


def list_checkpoints(db: Database) -> list[AuditCheckpoint]:
    with db.session() as s:
        return list(s.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.sequence),
                                                            col(AuditCheckpoint.id))).all())


def latest_checkpoint(db: Database) -> AuditCheckpoint | None:
    with db.session() as s:
        return s.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.sequence).desc(),
                                                       col(AuditCheckpoint.id).desc())).first()


def add_token(db: Database, token: ApiToken) -> ApiToken:
    with db.session() as s:
        s.add(token)
        s.commit()
        s.refresh(token)
        return token


_TOKENS = ApiToken.__table__  # type: ignore[attr-defined]
_TOKEN_BY_HASH = sa_select(_TOKENS).where(_TOKENS.c.token_hash == bindparam("token_hash"))


def get_token_by_hash(db: Database, token_hash: str) -> ApiToken | None:
    """Every authenticated REST request asks: a prebuilt statement and a plain row, no ORM session."""
    with db.reader() as conn:
        row = conn.execute(_TOKEN_BY_HASH, {"token_hash": token_hash}).first()
    return None if row is None else ApiToken(**row._mapping)


def get_token_by_name(db: Database, name: str) -> ApiToken | None:
    with db.session() as s:
        return s.exec(select(ApiToken).where(ApiToken.name == name)).first()


def list_tokens(db: Database) -> list[ApiToken]:
    with db.session() as s:
        return list(s.exec(select(ApiToken).order_by(col(ApiToken.id))).all())


def add_audited(db: Database, row: _Row, audit: AuditEvent) -> _Row:
    """Insert ``row`` and chain its audit event in one transaction (an IntegrityError propagates, nothing kept)."""
    with db.session() as s:
        s.add(row)
        audit_chain.append(s, audit)
        s.commit()
        s.refresh(row)
        return row


def revoke_by_name(db: Database, model: type[_Revocable], name: str, at: dt.datetime,
                   audit: AuditEvent) -> _Revocable | None:
    """Set ``revoked_at`` on the named token or client certificate (idempotent), audited in the same transaction.

    ``None`` when no such row exists.
    """
    with db.session() as s:
        row = s.exec(select(model).where(model.name == name)).first()
        if row is None:
            return None
        if row.revoked_at is None:
            row.revoked_at = at
            s.add(row)
        audit_chain.append(s, audit)
        s.commit()
        s.refresh(row)
        return row


def get_client_certificate(db: Database, fingerprint: str) -> ClientCertificate | None:
    with db.session() as s:
        return s.exec(select(ClientCertificate).where(ClientCertificate.fingerprint_sha256 == fingerprint)).first()


def list_client_certificates(db: Database) -> list[ClientCertificate]:
    with db.session() as s:
        return list(s.exec(select(ClientCertificate).order_by(col(ClientCertificate.id))).all())


def count_tokens(db: Database) -> int:
    with db.session() as s:
        return int(s.exec(select(func.count()).select_from(ApiToken)).one())
