"""Security administration over REST: API tokens and client certificates (admin), the audit log (auditor)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from api.context import bind_client_certificate, create_token, revoke_token, unbind_client_certificate
from api.deps import Actor, ServicesDep, require
from pki.clock import utc
from pki.store import repo
from pki.store.audit_chain import entry_dict

tokens = APIRouter(prefix="/api/v1/tokens", tags=["security"])
clients = APIRouter(prefix="/api/v1/client-certificates", tags=["security"])
audit = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Admin = Annotated[Actor, Depends(require())]
Auditor = Annotated[Actor, Depends(require("auditor"))]


class TokenOut(BaseModel):
    name: str
    role: str
    scopes: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    role: str = Field(max_length=32)
    scopes: list[str] | None = Field(default=None, max_length=16)
    expires_days: int | None = Field(default=90, ge=1, le=3650, description="null: never (not recommended)")


class TokenCreated(TokenOut):
    token: str = Field(description="shown once; only its SHA-256 is stored")


class ClientCertOut(BaseModel):
    name: str
    role: str
    scopes: list[str]
    fingerprint_sha256: str
    subject: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class ClientCertCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    role: str = Field(max_length=32)
    certificate_pem: str = Field(max_length=20_000)
    scopes: list[str] | None = Field(default=None, max_length=16)


class AuditEntryOut(BaseModel):
    sequence: int | None
    at: str
    actor: str
    action: str
    target: str | None
    outcome: str
    request_id: str | None
    details: str | None
    prev_hash: str | None
    entry_hash: str | None


def _opt(value: dt.datetime | None) -> dt.datetime | None:
    return utc(value) if value else None


def _token_out(name: str, services: ServicesDep) -> TokenOut:
    row = repo.get_token_by_name(services.db, name)
    assert row is not None
    return TokenOut(name=row.name, role=row.role, scopes=(row.scopes or "").split(), created_at=utc(row.created_at),
                    expires_at=_opt(row.expires_at), revoked_at=_opt(row.revoked_at))


@tokens.get("", response_model=list[TokenOut], summary="List API tokens (never their values)")
def list_tokens(services: ServicesDep, _: Admin) -> list[TokenOut]:
    return [_token_out(t.name, services) for t in repo.list_tokens(services.db)]


@tokens.post("", response_model=TokenCreated, status_code=201, summary="Create an API token")
def create(body: TokenCreate, services: ServicesDep, actor: Admin) -> TokenCreated:
    value = create_token(services, body.name, body.role, scopes=body.scopes,
                         expires_in=dt.timedelta(days=body.expires_days) if body.expires_days else None,
                         actor=actor.label)
    return TokenCreated(**_token_out(body.name, services).model_dump(), token=value)


@tokens.delete("/{name}", response_model=TokenOut, summary="Revoke an API token")
def revoke(name: str, services: ServicesDep, actor: Admin) -> TokenOut:
    revoke_token(services, name, actor=actor.label)
    return _token_out(name, services)


def _client_out(services: ServicesDep, name: str) -> ClientCertOut:
    for row in repo.list_client_certificates(services.db):
        if row.name == name:
            return ClientCertOut(name=row.name, role=row.role, scopes=(row.scopes or "").split(),
                                 fingerprint_sha256=row.fingerprint_sha256, subject=row.subject,
                                 expires_at=_opt(row.expires_at), revoked_at=_opt(row.revoked_at))
    raise AssertionError(name)


@clients.get("", response_model=list[ClientCertOut], summary="List client certificates allowed to call the API")
def list_clients(services: ServicesDep, _: Admin) -> list[ClientCertOut]:
    return [_client_out(services, r.name) for r in repo.list_client_certificates(services.db)]


@clients.post("", response_model=ClientCertOut, status_code=201, summary="Allow a TLS client certificate (mTLS)")
def bind(body: ClientCertCreate, services: ServicesDep, actor: Admin) -> ClientCertOut:
    bind_client_certificate(services, body.name, body.role, body.certificate_pem.encode(), scopes=body.scopes,
                            actor=actor.label)
    return _client_out(services, body.name)


@clients.delete("/{name}", response_model=ClientCertOut, summary="Revoke a client certificate's API access")
def unbind(name: str, services: ServicesDep, actor: Admin) -> ClientCertOut:
    unbind_client_certificate(services, name, actor=actor.label)
    return _client_out(services, name)


@audit.get("", response_model=list[AuditEntryOut], summary="Audit entries in chain order")
def list_audit(services: ServicesDep, _: Auditor, after_sequence: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               action: Annotated[str | None, Query(max_length=64)] = None) -> list[AuditEntryOut]:
    rows = repo.list_audit(services.db, after_sequence=after_sequence, limit=limit, action=action)
    return [AuditEntryOut(**entry_dict(r)) for r in rows]


@audit.get("/verify", summary="Verify the hash chain and the signed checkpoints")
def verify(services: ServicesDep, _: Auditor) -> dict[str, object]:
    return services.audit_log().verify().as_dict()


@audit.get("/export", summary="The whole log as JSON lines (entries, checkpoints, head)",
           response_class=Response)
def export(services: ServicesDep, _: Auditor) -> Response:
    buf = io.StringIO()
    services.audit_log().export(buf)
    return Response(buf.getvalue(), media_type="application/x-ndjson")


@audit.post("/checkpoint", summary="Sign the current chain head now")
def checkpoint(services: ServicesDep, actor: Admin) -> dict[str, object]:
    cp = services.audit_log().checkpoint(actor=actor.label)
    if cp is None:
        return {"created": False}
    return {"created": True, "sequence": cp.sequence, "entry_hash": cp.entry_hash,
            "key_fingerprint": cp.key_fingerprint}
