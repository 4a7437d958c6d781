"""Certificate authorities (read-only here; CAs are created and rotated with the `pnc` CLI)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import READ_ROLES, Actor, ServicesDep, require
from api.rest.schemas import CaOut, ca_out
from pki.store import repo

router = APIRouter(prefix="/api/v1/cas", tags=["certificate authorities"])
Reader = Annotated[Actor, Depends(require(*READ_ROLES))]


def _out(services: ServicesDep, name: str) -> CaOut:
    a = services.authority
    ca = a.ca(name)
    parent = a.ca_by_id(ca.parent_id).name if ca.parent_id else None
    rec = repo.get_certificate(services.db, ca.certificate_id) if ca.certificate_id else None
    return ca_out(ca, parent, rec, a.public_url)


@router.get("", response_model=list[CaOut], summary="List CAs")
def list_cas(services: ServicesDep, _: Reader) -> list[CaOut]:
    return [_out(services, ca.name) for ca in services.authority.cas()]


@router.get("/{name}", response_model=CaOut, summary="Show one CA")
def get_ca(name: str, services: ServicesDep, _: Reader) -> CaOut:
    return _out(services, name)
