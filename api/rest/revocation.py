"""Revocation: by record id or by serial; RFC 5280 reason codes, removeFromCRL releases a hold."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api.context import Services
from api.deps import Actor, ServicesDep, require
from api.rest.schemas import CertificateOut
from pki.hashdata import parse_serial_hex, serial_to_hex
from pki.revocation import RevocationReason, revoke
from pki.store.models import Certificate

router = APIRouter(prefix="/api/v1/certificates", tags=["revocation"])
Revoker = Annotated[Actor, Depends(require("operator"))]


class RevokeRequest(BaseModel):
    reason: str = Field(max_length=32, description="RFC 5280 reason: keyCompromise, cACompromise, affiliationChanged, "
                        "superseded, cessationOfOperation, certificateHold, or removeFromCRL to release a hold")
    revoked_at: dt.datetime | None = Field(default=None, description="default: now; may be earlier, never later")


class RevokeResponse(BaseModel):
    certificate: CertificateOut
    changed: bool = Field(description="false when the request repeated the current state (idempotent)")


def _do(services: Services, rec: Certificate, body: RevokeRequest, actor: Actor, request: Request) -> RevokeResponse:
    reason = RevocationReason.parse(body.reason)
    at = body.revoked_at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    result = revoke(services.authority, rec, reason, actor=actor.label, request_id=request.headers.get("x-request-id"),
                    at=at, listeners=(services.ocsp.on_revocation, services.crl.on_revocation))
    issuer = services.authority.ca_by_id(result.record.ca_id).name
    return RevokeResponse(certificate=CertificateOut.of(result.record, issuer), changed=result.changed)


@router.post("/{cert_id}/revoke", response_model=RevokeResponse, summary="Revoke (or release a hold) by record id")
def revoke_by_id(cert_id: int, body: RevokeRequest, request: Request, services: ServicesDep,
                 actor: Revoker) -> RevokeResponse:
    return _do(services, services.authority.certificate(cert_id), body, actor, request)


@router.post("/serial/{serial}/revoke", response_model=RevokeResponse,
             summary="Revoke (or release a hold) by hex serial; ?issuer=<ca> when the serial is ambiguous")
def revoke_by_serial(serial: str, body: RevokeRequest, request: Request, services: ServicesDep, actor: Revoker,
                     issuer: str | None = None) -> RevokeResponse:
    canonical = serial_to_hex(parse_serial_hex(serial))
    return _do(services, services.authority.certificate_by_serial(canonical, ca=issuer), body, actor, request)
