"""Tables of the revocation side: delegated OCSP signers, pre-signed OCSP responses and CRLs.

Pre-signed responses live in a table (not only in memory) so that several service instances, and the ``pnc`` CLI
revoking offline, share them: whoever signs writes the row, every instance polls rows changed since its last look
and keeps a hot in-memory copy. ``updated_at`` is what the pollers follow; a revocation first marks the affected
rows ``stale`` (same transaction as the revocation) so no instance keeps serving an old "good".
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OcspSigner(SQLModel, table=True):
    """One delegated OCSP responder certificate (id-kp-OCSPSigning, ocsp-nocheck) of an issuing CA."""

    __tablename__ = "ocsp_signer"

    id: int | None = Field(default=None, primary_key=True)
    ca_id: int = Field(foreign_key="certificate_authority.id", index=True)
    certificate_id: int = Field(foreign_key="certificate.id")
    key_uri: str = Field(max_length=512)
    not_before: dt.datetime
    not_after: dt.datetime
    created_at: dt.datetime = Field(default_factory=_now)


class OcspResponseRecord(SQLModel, table=True):
    """The current pre-signed OCSP response of one certificate for one CertID hash algorithm."""

    __tablename__ = "ocsp_response"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial", "hash_algorithm", name="uq_ocsp_response_cert_alg"),
        Index("ix_ocsp_response_updated_at", "updated_at"),
        Index("ix_ocsp_response_this_update", "this_update"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ca_id: int = Field(foreign_key="certificate_authority.id")
    serial: str = Field(max_length=40)
    hash_algorithm: str = Field(max_length=8)
    cert_status: str = Field(max_length=16)  # good | revoked | stale (invalidated, must not be served)
    der: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    this_update: dt.datetime
    next_update: dt.datetime
    produced_at: dt.datetime
    signer_id: int | None = Field(default=None)  # OcspSigner.id, None when signed with the CA key
    updated_at: dt.datetime = Field(default_factory=_now)


class CrlRecord(SQLModel, table=True):
    """A signed CRL; the newest number per CA is the one served. Numbers only grow (unique per CA)."""

    __tablename__ = "crl"
    __table_args__ = (UniqueConstraint("ca_id", "number", name="uq_crl_ca_number"),)

    id: int | None = Field(default=None, primary_key=True)
    ca_id: int = Field(foreign_key="certificate_authority.id", index=True)
    number: int
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    this_update: dt.datetime
    next_update: dt.datetime
    revoked_count: int = 0
    created_at: dt.datetime = Field(default_factory=_now)


__all__ = ["CrlRecord", "OcspResponseRecord", "OcspSigner"]
