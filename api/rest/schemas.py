"""Request/response models of the REST API (OpenAPI at /docs)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from pki.clock import utc
from pki.store.models import Certificate, CertificateAuthority


class CaOut(BaseModel):
    name: str
    kind: str
    generation: str
    parent: str | None
    status: str
    key_algorithm: str
    key_uri_scheme: str
    subject: str | None = None
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    serial: str | None = None
    certificate_url: str


class CertificateOut(BaseModel):
    id: int
    serial: str
    issuer: str
    kind: str
    generation: str
    status: str
    subject: str
    key_algorithm: str
    not_before: dt.datetime
    not_after: dt.datetime
    owner: str | None
    fingerprint_sha256: str | None
    issued_at: dt.datetime | None
    revoked_at: dt.datetime | None
    revocation_reason: str | None

    @classmethod
    def of(cls, rec: Certificate, issuer_name: str) -> CertificateOut:
        assert rec.id is not None
        return cls(
            id=rec.id, serial=rec.serial, issuer=issuer_name, kind=rec.kind, generation=rec.generation,
            status=rec.status, subject=rec.subject, key_algorithm=rec.key_algorithm,
            not_before=utc(rec.not_before), not_after=utc(rec.not_after), owner=rec.owner,
            fingerprint_sha256=rec.fingerprint_sha256,
            issued_at=utc(rec.issued_at) if rec.issued_at else None,
            revoked_at=utc(rec.revoked_at) if rec.revoked_at else None, revocation_reason=rec.revocation_reason,
        )


class IssueRequest(BaseModel):
    kind: str = Field(description="certificate kind, e.g. secc-leaf, station-client, contract-leaf, csms-server")
    csr: str = Field(max_length=10_000, description="PEM PKCS#10 certificate signing request")
    generation: str | None = Field(default=None, description="iso15118-2, iso15118-20 or ocpp (default by kind)")
    issuer: str | None = Field(default=None, max_length=64, description="CA name (default: the active issuer)")
    validity_days: int | None = Field(default=None, ge=1, le=36500)
    owner: str | None = Field(default=None, max_length=255, description="station id, EMAID, ... for lookups")
    expect_common_name: str | None = Field(default=None, max_length=64)
    expect_organization: str | None = Field(default=None, max_length=64)


class IssueResponse(BaseModel):
    certificate: CertificateOut
    pem: str
    chain_pem: str = Field(description="leaf, Sub-CA 2, Sub-CA 1 (root excluded), as OCPP CertificateSigned wants")


MAX_BATCH = 1000  # CSRs per bulk request: ~1 s of work and ~1 MB of answer, well inside the request timeout


class BatchItemIn(BaseModel):
    csr: str = Field(max_length=10_000, description="PEM PKCS#10 certificate signing request")
    owner: str | None = Field(default=None, max_length=255, description="station id, EMAID, ... for lookups")
    expect_common_name: str | None = Field(default=None, max_length=64)
    expect_organization: str | None = Field(default=None, max_length=64)


class BatchIssueRequest(BaseModel):
    kind: str = Field(description="certificate kind for every item, e.g. station-client, secc-leaf")
    generation: str | None = Field(default=None, description="iso15118-2, iso15118-20 or ocpp (default by kind)")
    issuer: str | None = Field(default=None, max_length=64, description="CA name (default: the active issuer)")
    validity_days: int | None = Field(default=None, ge=1, le=36500)
    items: list[BatchItemIn] = Field(min_length=1, max_length=MAX_BATCH)


class BatchItemOut(BaseModel):
    index: int = Field(description="position of the CSR in the request")
    status: str = Field(description="issued, or refused (the CSR or the policy; do not retry unchanged), or "
                                    "failed (the service could not; retry this item)")
    id: int | None = None
    serial: str | None = None
    pem: str | None = Field(default=None, description="the leaf; append chain_pem for OCPP CertificateSigned")
    problem: dict[str, object] | None = Field(default=None, description="RFC 9457 problem of a refused/failed item")


class BatchIssueResponse(BaseModel):
    issuer: str
    issued: int
    refused: int
    failed: int
    chain_pem: str = Field(description="Sub-CA 2, Sub-CA 1 (root excluded), shared by every issued item")
    items: list[BatchItemOut]


def ca_out(ca: CertificateAuthority, parent: str | None, rec: Certificate | None, base_url: str) -> CaOut:
    return CaOut(
        name=ca.name, kind=ca.kind, generation=ca.generation, parent=parent, status=ca.status,
        key_algorithm=ca.key_algorithm, key_uri_scheme=ca.key_uri.split(":", 1)[0],
        subject=rec.subject if rec else None,
        not_before=utc(rec.not_before) if rec else None, not_after=utc(rec.not_after) if rec else None,
        serial=rec.serial if rec else None, certificate_url=f"{base_url}/ca/{ca.name}.der",
    )
