"""Tables. Only :mod:`pki.store` imports SQLModel; the rest of ``pki`` uses the repository functions.

Serials are stored as lower-case hex without leading zeros (OCPP's form, and 20-octet serials do not fit a
BIGINT). ``(ca_id, serial)`` is unique: the database, not the application, guarantees no duplicate serials per
issuer, even with several instances issuing concurrently.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertStatus:
    PENDING = "pending"  # write-ahead record: serial reserved, not yet signed
    VALID = "valid"
    REVOKED = "revoked"
    ABORTED = "aborted"  # signing never completed; the certificate was never released


class CaStatus:
    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


class CertificateAuthority(SQLModel, table=True):
    __tablename__ = "certificate_authority"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    kind: str = Field(max_length=32)
    generation: str = Field(max_length=16)
    parent_id: int | None = Field(default=None, foreign_key="certificate_authority.id")
    key_uri: str = Field(max_length=512)
    key_algorithm: str = Field(max_length=16)
    certificate_id: int | None = Field(default=None)  # the CA's own certificate (set once signed)
    status: str = Field(default=CaStatus.ACTIVE, max_length=16)
    external_key: bool = Field(default=False)  # root key held offline; we only have its certificate
    created_at: dt.datetime = Field(default_factory=_now)


class IssuerHash(SQLModel, table=True):
    """Name/key hashes of a CA certificate under SHA-1/256/384/512: finds the issuer of an OCSP CertID in O(1)."""

    __tablename__ = "issuer_hash"
    __table_args__ = (Index("ix_issuer_hash_lookup", "algorithm", "name_hash", "key_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    ca_id: int = Field(foreign_key="certificate_authority.id", index=True)
    algorithm: str = Field(max_length=8)
    name_hash: str = Field(max_length=128)
    key_hash: str = Field(max_length=128)


class Certificate(SQLModel, table=True):
    __tablename__ = "certificate"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial", name="uq_certificate_issuer_serial"),
        Index("ix_certificate_not_after", "not_after"),
        # "valid certificates expiring before X" (expiry watch, metrics) as an index range, not row lookups
        Index("ix_certificate_status_not_after", "status", "not_after"),
        Index("ix_certificate_owner", "owner"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ca_id: int = Field(foreign_key="certificate_authority.id", index=True)  # the issuer
    # indexed on its own too: revocation by serial without naming the CA must not scan (bench/growth.py)
    serial: str = Field(max_length=40, index=True)
    kind: str = Field(max_length=32, index=True)
    generation: str = Field(max_length=16)
    status: str = Field(default=CertStatus.PENDING, max_length=16, index=True)
    subject: str = Field(max_length=1024)
    key_algorithm: str = Field(max_length=16)
    not_before: dt.datetime
    not_after: dt.datetime
    der: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    fingerprint_sha256: str | None = Field(default=None, max_length=64, index=True, unique=True)
    owner: str | None = Field(default=None, max_length=255)
    subject_ca_id: int | None = Field(default=None)  # set when this is a CA's own certificate
    created_at: dt.datetime = Field(default_factory=_now)
    issued_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = Field(default=None, max_length=32)
    failure: str | None = Field(default=None, max_length=512)
    actor: str | None = Field(default=None, max_length=128)
    request_id: str | None = Field(default=None, max_length=64)


class ApiToken(SQLModel, table=True):
    """API tokens are stored as SHA-256 hashes: a database leak does not leak usable tokens."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    role: str = Field(max_length=32)
    created_at: dt.datetime = Field(default_factory=_now)
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    scopes: str | None = Field(default=None, max_length=512)  # space-separated API areas; None = whole role


class AuditEvent(SQLModel, table=True):
    """Append-only record of security-relevant actions (issuance, revocation, key and token operations).

    Hash-chained (``pki.store.audit_chain``): ``entry_hash`` covers the canonical JSON of the entry including
    ``prev_hash``, and ``sequence`` is gap-free, so an edited, deleted or reordered entry breaks verification.
    """

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=_now, index=True)
    actor: str = Field(max_length=128)
    action: str = Field(max_length=64, index=True)
    target: str | None = Field(default=None, max_length=255)
    outcome: str = Field(max_length=16)
    request_id: str | None = Field(default=None, max_length=64)
    details: str | None = Field(default=None, max_length=4096)
    sequence: int | None = Field(default=None, unique=True, index=True)
    prev_hash: str | None = Field(default=None, max_length=64)
    entry_hash: str | None = Field(default=None, max_length=64)


from pki.store.ocpp_models import *  # noqa
from pki.store.ocsp_models import *  # noqa
from pki.store.security_models import *  # noqa: E402,F403
from pki.store.contract_models import *  # noqa

from pki.store.lifecycle_models import *  # noqa
