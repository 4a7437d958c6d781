"""Certificate authorities (read-only here; CAs are created and rotated with the `pnc` CLI)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import READ_ROLES, Actor, ServicesDep, require
from api.rest.schemas import CaOut, ca_out
from pki.store import repo
from pki.store.models import Certificate, CertificateAuthority

router = APIRouter(prefix="/api/v1/cas", tags=["certificate authorities"])
Reader = Annotated[Actor, Depends(require(*READ_ROLES))]


def _out(services: ServicesDep, ca: CertificateAuthority, certs: dict[int, Certificate]) -> CaOut:
    a = services.authority
    parent = a.ca_by_id(ca.parent_id).name if ca.parent_id else None
    rec = certs.get(ca.certificate_id) if ca.certificate_id else None
    return ca_out(ca, parent, rec, a.public_url)


@router.get("", response_model=list[CaOut], summary="List CAs")
def list_cas(services: ServicesDep, _: Reader) -> list[CaOut]:
    cas = services.authority.cas()
    certs = repo.certificates_by_id(services.db, [ca.certificate_id for ca in cas if ca.certificate_id])
    return [_out(services, ca, certs) for ca in cas]


@router.get("/{name}", response_model=CaOut, summary="Show one CA")
def get_ca(name: str, services: ServicesDep, _: Reader) -> CaOut:
    ca = services.authority.ca(name)
    certs = repo.certificates_by_id(services.db, [ca.certificate_id] if ca.certificate_id else [])
    return _out(services, ca, certs)
