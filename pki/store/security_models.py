"""Tables of issue 5: the audit chain head, signed audit checkpoints, and client certificates for mTLS API access.

The chain head is a single row that every audit append locks (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` already serialises writers), so concurrent writers in several processes cannot fork the chain.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

__all__ = ["GENESIS_HASH", "AuditChainHead", "AuditCheckpoint", "ClientCertificate"]

GENESIS_HASH = "0" * 64


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AuditChainHead(SQLModel, table=True):
    __tablename__ = "audit_chain_head"

    id: int | None = Field(default=None, primary_key=True)  # always 1
    sequence: int = Field(default=0)
    entry_hash: str = Field(default=GENESIS_HASH, max_length=64)


class AuditCheckpoint(SQLModel, table=True):
    """A signature over (sequence, entry_hash) of the chain head: an attacker who can write the database can
    recompute every hash, but cannot sign a new history with the audit key that lives in the key store."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    sequence: int = Field(index=True)
    entry_hash: str = Field(max_length=64)
    at: dt.datetime = Field(default_factory=_now)
    key_uri: str = Field(max_length=512)
    key_fingerprint: str = Field(max_length=64)  # SHA-256 of the signing key's SubjectPublicKeyInfo
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ClientCertificate(SQLModel, table=True):
    """An API client authenticated by a TLS client certificate (pinned by SHA-256 fingerprint) instead of a token."""

    __tablename__ = "api_client_certificate"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    fingerprint_sha256: str = Field(max_length=64, unique=True, index=True)
    role: str = Field(max_length=32)
    scopes: str | None = Field(default=None, max_length=512)
    subject: str = Field(max_length=1024)
    created_at: dt.datetime = Field(default_factory=_now)
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
