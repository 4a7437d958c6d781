"""Certificates: list, show, download, and issue from a CSR."""

from __future__ import annotations

from typing import Annotated, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import READ_ROLES, Actor, ServicesDep, require, require_issuable
from api.rest.problems import problem_of
from api.rest.schemas import (
    BatchIssueRequest,
    BatchIssueResponse,
    CertificateOut,
    IssueRequest,
    IssueResponse,
)
from pki.batch_issuance import BatchIssued, BatchRequest, issue_batch
from pki.csr_policy import SubjectExpectation
from pki.errors import InvalidRequest, NotFound, PolicyViolation
from pki.profiles import CertKind, Generation
from pki.store import repo

router = APIRouter(prefix="/api/v1/certificates", tags=["certificates"])
BATCH_PATH = "/api/v1/certificates/batch"  # takes a larger body (settings.max_batch_body_bytes)
Reader = Annotated[Actor, Depends(require(*READ_ROLES))]
Issuer = Annotated[Actor, Depends(require("operator", "csms"))]
MAX_DB_INT = 2**31 - 1  # ids are INTEGER on PostgreSQL; larger values were 500s (found by fuzzing)
CertId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]


def _issuer_name(services: ServicesDep, ca_id: int, cache: dict[int, str]) -> str:
    if ca_id not in cache:
        cache[ca_id] = services.authority.ca_by_id(ca_id).name
    return cache[ca_id]


@router.get("", response_model=list[CertificateOut], summary="List certificates")
def list_certificates(
    services: ServicesDep,
    _: Reader,
    kind: str | None = None,
    status: Literal["valid", "revoked"] | None = None,
    owner: str | None = None,
    issuer: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> list[CertificateOut]:
    ca_id = services.authority.ca(issuer).id if issuer else None
    rows = repo.list_certificates(services.db, kind=kind, status=status, owner=owner, ca_id=ca_id, limit=limit,
                                  offset=offset)
    names: dict[int, str] = {}
    return [CertificateOut.of(r, _issuer_name(services, r.ca_id, names)) for r in rows]


@router.get("/{cert_id}", response_model=CertificateOut, summary="Show one certificate")
def get_certificate(cert_id: CertId, services: ServicesDep, _: Reader) -> CertificateOut:
    rec = services.authority.certificate(cert_id)
    return CertificateOut.of(rec, _issuer_name(services, rec.ca_id, {}))


@router.get("/{cert_id}/download", summary="Download as PEM or DER, optionally with its chain",
            response_class=Response)
def download(cert_id: CertId, services: ServicesDep, _: Reader, format: Literal["pem", "der"] = "pem",
             chain: bool = False) -> Response:
    rec = services.authority.certificate(cert_id)
    if rec.der is None:
        raise NotFound(f"certificate {cert_id} has no data")
    cert = x509.load_der_x509_certificate(rec.der)
    if format == "der":
        if chain:
            raise InvalidRequest("a chain is only available as PEM")
        return Response(rec.der, media_type="application/pkix-cert")
    parts = [cert]
    if chain:
        parts += list(services.authority.chain(services.authority.ca_by_id(rec.ca_id)))
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in parts)
    return Response(pem, media_type="application/x-pem-file")


def _kind_and_generation(kind: str, generation: str | None) -> tuple[CertKind, Generation | None]:
    try:
        return CertKind(kind), Generation(generation) if generation else None
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


@router.post("", response_model=IssueResponse, status_code=201, summary="Issue a certificate from a CSR")
def issue(body: IssueRequest, request: Request, services: ServicesDep, actor: Issuer) -> IssueResponse:
    kind, generation = _kind_and_generation(body.kind, body.generation)
    require_issuable(services, request, actor, kind.value)
    expect = SubjectExpectation(common_name=body.expect_common_name, organization=body.expect_organization)
    issued = services.authority.issue_from_csr(
        body.csr, kind, generation=generation, issuer=body.issuer, expect=expect,
        validity_days=body.validity_days, owner=body.owner, actor=actor.label,
        request_id=request.headers.get("x-request-id"),
    )
    issuer_name = services.authority.ca_by_id(issued.record.ca_id).name
    return IssueResponse(certificate=CertificateOut.of(issued.record, issuer_name), pem=issued.pem(),
                         chain_pem=issued.chain_pem())


@router.post("/batch", response_model=BatchIssueResponse, summary="Issue many certificates from CSRs at once",
             description="Factory and fleet provisioning: up to 1,000 CSRs of one kind. Each item is checked, "
                         "recorded and audited on its own and has its own outcome; the answer is 200 whenever the "
                         "batch itself was acceptable. Items marked failed were not issued and may be retried.")
def issue_many(body: BatchIssueRequest, request: Request, services: ServicesDep, actor: Issuer) -> JSONResponse:
    kind, generation = _kind_and_generation(body.kind, body.generation)
    require_issuable(services, request, actor, kind.value)
    requests = [BatchRequest(item.csr, owner=item.owner, expect=SubjectExpectation(
        common_name=item.expect_common_name, organization=item.expect_organization)
        if item.expect_common_name or item.expect_organization else None) for item in body.items]
    result = issue_batch(services.authority, requests, kind, generation=generation, issuer=body.issuer,
                         validity_days=body.validity_days, actor=actor.label,
                         request_id=request.headers.get("x-request-id"))
    # Plain dictionaries into a JSONResponse: FastAPI's response_model path re-validates and re-encodes every item
    # (~25 µs each, a tenth of a certificate's whole cost); the schema above still documents the answer.
    items: list[dict[str, object]] = []
    for index, outcome in enumerate(result.items):
        if isinstance(outcome, BatchIssued):
            items.append({"index": index, "status": "issued", "id": outcome.id, "serial": outcome.serial,
                          "pem": outcome.pem(), "problem": None})
        else:
            refused = isinstance(outcome, InvalidRequest | PolicyViolation)
            items.append({"index": index, "status": "refused" if refused else "failed", "id": None, "serial": None,
                          "pem": None, "problem": problem_of(outcome)})
    counts = {s: sum(i["status"] == s for i in items) for s in ("issued", "refused", "failed")}
    return JSONResponse({"issuer": result.issuer.name, **counts, "chain_pem": result.chain_pem(), "items": items})
