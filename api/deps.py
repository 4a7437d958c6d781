"""FastAPI dependencies: the services container and the authenticated actor.

Every ``/api`` route depends on :func:`require` with the roles allowed to call it; there is no unauthenticated
write endpoint. Public reads (CA certificates at their AIA URLs, health) are listed in ``PUBLIC_ROUTES`` and a test
checks that nothing else is reachable without a token.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.context import Services, hash_token
from pki.clock import utc
from pki.errors import Forbidden, Unauthorized
from pki.store import repo


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


@dataclass(frozen=True)
class Actor:
    name: str
    role: str

    @property
    def label(self) -> str:
        return f"token:{self.name}"


def authenticate(request: Request, services: ServicesDep) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        _audit_failure(services, request, "missing bearer token")
        raise Unauthorized("an API token is required (Authorization: Bearer <token>)")
    record = repo.get_token_by_hash(services.db, hash_token(token.strip()))
    now = dt.datetime.now(dt.UTC)
    if record is None or record.revoked_at is not None or (
        record.expires_at is not None and utc(record.expires_at) < now
    ):
        _audit_failure(services, request, "invalid, expired or revoked token")
        raise Unauthorized("the API token is invalid, expired or revoked")
    return Actor(record.name, record.role)


def _audit_failure(services: Services, request: Request, reason: str) -> None:
    repo.add_audit(services.db, repo.audit_event("anonymous", "auth.failure", "failure",
                                                  target=f"{request.method} {request.url.path}",
                                                  request_id=request.headers.get("x-request-id"),
                                                  details={"reason": reason}))


def require(*roles: str) -> Callable[..., Actor]:
    """Dependency factory: the caller must hold one of ``roles`` (``admin`` may do everything)."""

    def _dep(actor: Annotated[Actor, Depends(authenticate)]) -> Actor:
        if actor.role != "admin" and actor.role not in roles:
            raise Forbidden(f"role {actor.role!r} may not do this; needs one of {', '.join(('admin', *roles))}")
        return actor

    return _dep


READ_ROLES = ("operator", "csms", "auditor")
