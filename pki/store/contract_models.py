"""Tables for Plug & Charge contracts: the ISO 15118 trust store and the contract registry.

Trust anchors are *foreign* certificates (V2G roots of other PKIs, MO roots of eMSPs, OEM roots of vehicle makers,
and their sub-CAs) that decide whether what EVs and stations send is trusted. They are identified by the SHA-256
fingerprint of their DER, which the database keeps unique. Our own roots are trusted implicitly (they live in
``certificate_authority``) and are never copied here.

A contract is the eMSP's promise to one customer; ``emaid`` is unique in the database, so two concurrent
generators can never hand out the same EMAID (the loser retries with a new random instance).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Index, LargeBinary
from sqlmodel import Field, SQLModel


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TrustRole:
    V2G = "v2g"
    MO = "mo"
    OEM = "oem"
    ALL = ("v2g", "mo", "oem")


class ContractStatus:
    ACTIVE = "active"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    ALL = ("active", "cancelled", "expired")


class TrustAnchor(SQLModel, table=True):
    __tablename__ = "trust_anchor"
    __table_args__ = (Index("ix_trust_anchor_role_subject", "role", "subject_der_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    role: str = Field(max_length=8, index=True)  # v2g | mo | oem
    is_root: bool = Field(default=True)
    subject: str = Field(max_length=1024)
    subject_der_hash: str = Field(max_length=64)  # sha256 of the DER subject: issuer lookups without parsing
    serial: str = Field(max_length=40)
    fingerprint_sha256: str = Field(max_length=64, unique=True)
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    not_before: dt.datetime
    not_after: dt.datetime
    label: str | None = Field(default=None, max_length=128)
    added_by: str = Field(max_length=128)
    added_at: dt.datetime = Field(default_factory=_now)


class Contract(SQLModel, table=True):
    __tablename__ = "contract"

    id: int | None = Field(default=None, primary_key=True)
    emaid: str = Field(max_length=15, unique=True)  # normalised: upper case, no separators, with check digit
    owner: str = Field(max_length=255, index=True)  # the eMSP / customer reference
    provider_id: str = Field(max_length=3)  # eMSP provider ID (EMAID chars 3-5)
    status: str = Field(default=ContractStatus.ACTIVE, max_length=16, index=True)
    pcid: str | None = Field(default=None, max_length=18, index=True)  # bound vehicle (OEM provisioning CN)
    generation: str = Field(default="iso15118-2", max_length=16)
    valid_from: dt.datetime
    valid_to: dt.datetime
    certificate_id: int | None = Field(default=None)  # the current contract certificate (certificate.id)
    created_by: str = Field(max_length=128)
    created_at: dt.datetime = Field(default_factory=_now)
    cancelled_at: dt.datetime | None = None
    note: str | None = Field(default=None, max_length=255)


__all__ = ["Contract", "ContractStatus", "TrustAnchor", "TrustRole"]
