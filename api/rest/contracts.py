"""Plug & Charge: the ISO 15118 trust store, the contract registry, and Get15118EVCertificate for external CSMSs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from api.deps import READ_ROLES, Actor, ServicesDep, require
from pki.clock import utc
from pki.store.contract_models import Contract, TrustAnchor

router = APIRouter(prefix="/api/v1", tags=["plug-and-charge"])
Reader = Annotated[Actor, Depends(require(*READ_ROLES))]
Operator = Annotated[Actor, Depends(require("operator"))]
Csms = Annotated[Actor, Depends(require("csms"))]


class TrustAnchorOut(BaseModel):
    id: int
    role: str
    is_root: bool
    subject: str
    serial: str
    fingerprint_sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    label: str | None
    added_by: str
    added_at: dt.datetime

    @classmethod
    def of(cls, row: TrustAnchor) -> TrustAnchorOut:
        assert row.id is not None
        return cls(id=row.id, role=row.role, is_root=row.is_root, subject=row.subject, serial=row.serial,
                   fingerprint_sha256=row.fingerprint_sha256, not_before=utc(row.not_before),
                   not_after=utc(row.not_after), label=row.label, added_by=row.added_by, added_at=utc(row.added_at))


class TrustAdd(BaseModel):
    role: Literal["v2g", "mo", "oem"]
    pem: str = Field(max_length=60_000, description="PEM bundle: a root and/or sub-CAs anchored in a trusted root")
    label: str | None = Field(default=None, max_length=128)


class ContractOut(BaseModel):
    id: int
    emaid: str
    owner: str
    provider_id: str
    status: str
    pcid: str | None
    generation: str
    valid_from: dt.datetime
    valid_to: dt.datetime
    certificate_id: int | None
    created_at: dt.datetime
    cancelled_at: dt.datetime | None
    note: str | None

    @classmethod
    def of(cls, c: Contract) -> ContractOut:
        assert c.id is not None
        return cls(id=c.id, emaid=c.emaid, owner=c.owner, provider_id=c.provider_id, status=c.status, pcid=c.pcid,
                   generation=c.generation, valid_from=utc(c.valid_from), valid_to=utc(c.valid_to),
                   certificate_id=c.certificate_id, created_at=utc(c.created_at),
                   cancelled_at=utc(c.cancelled_at) if c.cancelled_at else None, note=c.note)


class ContractCreate(BaseModel):
    owner: str = Field(min_length=1, max_length=255, description="eMSP / customer reference")
    emaid: str | None = Field(default=None, max_length=20, description="14 or 15 characters, separators allowed; "
                                                                        "omit to generate one")
    country: str | None = Field(default=None, max_length=2, description="for a generated EMAID")
    provider: str | None = Field(default=None, max_length=3, description="eMSP provider ID for a generated EMAID")
    pcid: str | None = Field(default=None, max_length=18, description="bind to this vehicle (OEM provisioning CN)")
    valid_days: int | None = Field(default=None, ge=1, le=3650)
    generation: Literal["iso15118-2", "iso15118-20"] = "iso15118-2"
    note: str | None = Field(default=None, max_length=255)


class ContractCancel(BaseModel):
    reason: str | None = Field(default=None, max_length=255)


class ContractBind(BaseModel):
    pcid: str = Field(max_length=18)


class EvCertificateRequest(BaseModel):
    """OCPP Get15118EVCertificateRequest fields plus the station id (for CSMSs that call us over REST)."""

    station_id: str = Field(max_length=255)
    iso15118SchemaVersion: str = Field(max_length=50)
    action: Literal["Install", "Update"]
    exiRequest: str = Field(max_length=11_000)
    maximumContractCertificateChains: int | None = Field(default=None, ge=0)
    prioritizedEMAIDs: list[str] | None = Field(default=None, min_length=1, max_length=8)
    ocppVersion: Literal["1.6", "2.0.1", "2.1"] = "2.0.1"


class StatusInfo(BaseModel):
    reasonCode: str
    additionalInfo: str | None = None


class EvCertificateResponse(BaseModel):
    status: Literal["Accepted", "Failed"]
    exiResponse: str
    statusInfo: StatusInfo | None = None
    remainingContracts: int | None = None
    iso15118ResponseCode: str


# --- trust store --------------------------------------------------------------------------------------------


@router.get("/trust", response_model=list[TrustAnchorOut], summary="List trusted V2G/MO/OEM roots and sub-CAs")
def trust_list(services: ServicesDep, _: Reader, role: Literal["v2g", "mo", "oem"] | None = None
               ) -> list[TrustAnchorOut]:
    return [TrustAnchorOut.of(r) for r in services.contracts.trust.list(role)]


@router.post("/trust", response_model=list[TrustAnchorOut], status_code=201, summary="Trust a root or sub-CA bundle")
def trust_add(body: TrustAdd, services: ServicesDep, actor: Operator) -> list[TrustAnchorOut]:
    rows = services.contracts.trust.add(body.pem, body.role, label=body.label, actor=actor.label)
    return [TrustAnchorOut.of(r) for r in rows]


@router.delete("/trust/{ident}", status_code=204, summary="Remove a trust anchor (id or fingerprint prefix)")
def trust_remove(ident: str, services: ServicesDep, actor: Operator) -> Response:
    services.contracts.trust.remove(ident, actor=actor.label)
    return Response(status_code=204)


# --- contracts ----------------------------------------------------------------------------------------------


@router.get("/contracts", response_model=list[ContractOut], summary="List contracts")
def contracts_list(services: ServicesDep, _: Reader, owner: str | None = None,
                   status: Literal["active", "cancelled", "expired"] | None = None, pcid: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   offset: Annotated[int, Query(ge=0)] = 0) -> list[ContractOut]:
    rows = services.contracts.registry.list(owner=owner, status=status, pcid=pcid, limit=limit, offset=offset)
    return [ContractOut.of(c) for c in rows]


@router.post("/contracts", response_model=ContractOut, status_code=201, summary="Create a contract")
def contracts_create(body: ContractCreate, services: ServicesDep, actor: Operator) -> ContractOut:
    c = services.contracts.registry.create(owner=body.owner, emaid=body.emaid, country=body.country,
                                           provider=body.provider, pcid=body.pcid, valid_days=body.valid_days,
                                           generation=body.generation, note=body.note, actor=actor.label)
    return ContractOut.of(c)


@router.get("/contracts/{emaid}", response_model=ContractOut, summary="Show one contract")
def contracts_get(emaid: str, services: ServicesDep, _: Reader) -> ContractOut:
    return ContractOut.of(services.contracts.registry.get(emaid))


@router.post("/contracts/{emaid}/cancel", response_model=ContractOut, summary="Cancel a contract")
def contracts_cancel(emaid: str, body: ContractCancel, services: ServicesDep, actor: Operator) -> ContractOut:
    return ContractOut.of(services.contracts.registry.cancel(emaid, reason=body.reason, actor=actor.label))


@router.post("/contracts/{emaid}/bind", response_model=ContractOut, summary="Bind a contract to a vehicle (PCID)")
def contracts_bind(emaid: str, body: ContractBind, services: ServicesDep, actor: Operator) -> ContractOut:
    return ContractOut.of(services.contracts.registry.bind(emaid, body.pcid, actor=actor.label))


# --- Get15118EVCertificate for external CSMSs ---------------------------------------------------------------


@router.post("/ev-certificate", response_model=EvCertificateResponse, summary="Get15118EVCertificate (Install/Update)")
def ev_certificate(body: EvCertificateRequest, services: ServicesDep, _: Csms) -> EvCertificateResponse:
    r = services.contracts.handle(body.station_id, body.iso15118SchemaVersion, body.action, body.exiRequest,
                                  maximum_contract_certificate_chains=body.maximumContractCertificateChains,
                                  prioritized_emaids=body.prioritizedEMAIDs, ocpp_version=body.ocppVersion)
    info = StatusInfo(reasonCode=r.reason_code or "", additionalInfo=(r.reason or "")[:512]) \
        if r.status != "Accepted" else None
    return EvCertificateResponse(status="Accepted" if r.status == "Accepted" else "Failed",
                                 exiResponse=r.exi_response, statusInfo=info,
                                 remainingContracts=r.remaining_contracts, iso15118ResponseCode=r.response_code)
