"""Unauthenticated routes: health probes and CA certificates at the URLs placed in AIA caIssuers."""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Response
from sqlalchemy import text

from api.context import Services
from api.deps import ServicesDep
from pki.errors import InvalidRequest

router = APIRouter(tags=["public"])
_FILE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]{0,63})\.(?P<ext>der|pem|crt)$")


@router.get("/health", summary="Liveness: the process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: the database answers")
def ready(services: ServicesDep, response: Response) -> dict[str, str]:
    if not _database_up(services):
        response.status_code = 503
        return {"status": "unavailable", "database": "down"}
    return {"status": "ready", "database": "up"}


@router.get("/ready/ocsp", summary="Readiness of the OCSP responder: it can answer, from memory if the database "
            "is down")
def ready_ocsp(services: ServicesDep, response: Response) -> dict[str, str | int]:
    """For the load balancer pool that serves /ocsp: during a database outage the pre-signed responses in
    memory are still valid answers, so an instance holding them stays in rotation (``/ready`` would take it out)."""
    cached = services.ocsp.cached_count
    up = _database_up(services)
    if not up and cached == 0:
        response.status_code = 503
        return {"status": "unavailable", "database": "down", "cached_responses": 0}
    return {"status": "ready", "database": "up" if up else "down", "cached_responses": cached}


def _database_up(services: Services) -> bool:
    try:
        with services.db.reader() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@router.get("/ca/{filename}", summary="CA certificate (AIA caIssuers target), .der, .crt or .pem",
            response_class=Response)
def ca_certificate(filename: str, services: ServicesDep) -> Response:
    match = _FILE.match(filename)
    if not match:
        raise InvalidRequest("use /ca/<name>.der, /ca/<name>.crt or /ca/<name>.pem")
    ca = services.authority.ca(match["name"])
    cert = services.authority.ca_certificate(ca)
    if match["ext"] == "pem":
        return Response(cert.public_bytes(serialization.Encoding.PEM), media_type="application/x-pem-file")
    return Response(cert.public_bytes(serialization.Encoding.DER), media_type="application/pkix-cert",
                    headers={"Cache-Control": "public, max-age=3600"})
