"""FastAPI dependencies: the services container and the authenticated actor.

Authorisation is declared in ONE place per route: its ``require(*roles)`` dependency. ``require`` records the roles
on the dependency (``allowed_roles``), so the role x endpoint matrix test reads the policy from the routes
themselves and checks every route against every role; a route without ``require`` must be registered here as
public (``register_public``) or station-authenticated (``register_station_route``) — otherwise the test fails.

Callers authenticate with an API token (``Authorization: Bearer``) or a TLS client certificate pinned by
fingerprint (ASGI ``tls`` extension, or a header set by a trusted TLS-terminating proxy). Tokens and certificates
carry a role and optional scopes (API areas, ``read``). Every failure is audited; every caller is rate limited.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from cryptography import x509
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from api.context import ROLES, Services, certificate_fingerprint, hash_token
from pki.clock import utc
from pki.errors import Forbidden, Unauthorized
from pki.store import repo

PUBLIC_ROUTES: dict[str, str] = {
    "/health": "liveness probe",
    "/ready": "readiness probe",
    "/ready/ocsp": "readiness probe of the OCSP pool (answers from memory during a database outage)",
    "/ca/{filename}": "CA certificates at their AIA caIssuers URLs (public by design)",
}
STATION_ROUTES: dict[str, str] = {}  # WebSocket routes that authenticate stations themselves (OCPP)


def register_public(path: str, reason: str) -> None:
    """Declare an unauthenticated route (OCSP, CRLs, ...) with the reason it must be public."""
    PUBLIC_ROUTES[path] = reason


def register_station_route(path: str, reason: str) -> None:
    STATION_ROUTES[path] = reason


async def get_services(request: Request) -> Services:
    """``async`` on purpose, like the role check below: FastAPI runs a plain ``def`` dependency in the thread pool,
    and a hop there and back cost more than this whole function (~0.3 ms each on a busy 2-core machine)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    scopes: frozenset[str] = frozenset()
    via: str = "token"  # token | certificate

    @property
    def label(self) -> str:
        return f"{'token' if self.via == 'token' else 'cert'}:{self.name}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _expired(expires_at: dt.datetime | None, revoked_at: dt.datetime | None) -> bool:
    return revoked_at is not None or (expires_at is not None and utc(expires_at) < _now())


def client_certificate(request: Request, services: Services) -> x509.Certificate | None:
    """The caller's TLS client certificate: from the ASGI TLS extension, or from the configured header when the
    request comes from a trusted proxy (never from anyone else: the header would be trivially forged)."""
    tls = (request.scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    pem: str | None = chain[0] if chain else None
    settings = services.settings
    if pem is None and settings.mtls_header:
        value = request.headers.get(settings.mtls_header)
        peer = request.client.host if request.client else ""
        if value and peer in settings.trusted_proxies:
            pem = urllib.parse.unquote(value)
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except ValueError:
        return None


def authenticate(request: Request, services: ServicesDep) -> Actor:
    header = request.headers.get("authorization", "")
    actor: Actor | None = None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            _audit_failure(services, request, "malformed Authorization header")
            raise Unauthorized("an API token is required (Authorization: Bearer <token>)")
        record = repo.get_token_by_hash(services.db, hash_token(token.strip()))
        if record is None or _expired(record.expires_at, record.revoked_at):
            _audit_failure(services, request, "invalid, expired or revoked token")
            raise Unauthorized("the API token is invalid, expired or revoked")
        actor = Actor(record.name, record.role, frozenset((record.scopes or "").split()), "token")
    else:
        cert = client_certificate(request, services)
        if cert is None:
            _audit_failure(services, request, "no credentials")
            raise Unauthorized("an API token is required (Authorization: Bearer <token>) or a client certificate")
        row = repo.get_client_certificate(services.db, certificate_fingerprint(cert))
        now = _now()
        if (row is None or _expired(row.expires_at, row.revoked_at)
                or not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            _audit_failure(services, request, "unknown, expired or revoked client certificate")
            raise Unauthorized("the client certificate is not registered, expired or revoked")
        actor = Actor(row.name, row.role, frozenset((row.scopes or "").split()), "certificate")
    assert services.token_limiter is not None
    services.token_limiter.check(actor.label)
    return actor


def _audit_failure(services: Services, request: Request, reason: str, action: str = "auth.failure",
                   actor: str = "anonymous") -> None:
    # Failed attempts are audited, but a client guessing tokens must not be able to flood the log (and the
    # single-writer chain): past its budget it only gets 429s.
    assert services.token_limiter is not None
    if action == "auth.failure":
        services.token_limiter.check(f"failures:{request.client.host if request.client else '-'}")
    repo.add_audit(services.db, repo.audit_event(actor, action, "failure",
                                                  target=f"{request.method} {request.url.path}"[:255],
                                                  request_id=(request.headers.get("x-request-id") or "")[:64] or None,
                                                  details={"reason": reason}))


def scope_allows(scopes: frozenset[str], method: str, path: str) -> bool:
    """Empty scopes: the whole role. ``read``: safe methods only. Other scopes: API areas (``/api/v1/<area>``)."""
    if not scopes:
        return True
    if "read" in scopes and method.upper() not in ("GET", "HEAD"):
        return False
    areas = scopes - {"read"}
    if not areas:
        return True
    area = path.removeprefix("/api/v1/").split("/", 1)[0] if path.startswith("/api/v1/") else path.strip("/")
    return area in areas


def require(*roles: str) -> Callable[..., Awaitable[Actor]]:
    """Dependency factory: the caller must hold one of ``roles`` (``admin`` may do everything) and its scopes must
    cover the route. The allowed roles are recorded on the dependency for the matrix test and the docs."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    allowed = frozenset(("admin", *roles))

    async def _dep(request: Request, services: ServicesDep,
                   actor: Annotated[Actor, Depends(authenticate)]) -> Actor:
        # runs on the event loop (no thread hop on the success path); the audit write of a denial goes to a thread
        route = request.scope.get("route")
        path = getattr(route, "path", request.url.path)
        if actor.role not in allowed:
            await run_in_threadpool(_audit_failure, services, request, f"role {actor.role} not allowed",
                                    "auth.denied", actor.label)
            raise Forbidden(f"role {actor.role!r} may not do this; needs one of {', '.join(sorted(allowed))}")
        if not scope_allows(actor.scopes, request.method, path):
            await run_in_threadpool(_audit_failure, services, request, "outside the credential's scopes",
                                    "auth.denied", actor.label)
            raise Forbidden(f"this credential is limited to scopes {' '.join(sorted(actor.scopes))}")
        return actor

    _dep.allowed_roles = allowed  # type: ignore[attr-defined]
    return _dep


def allowed_roles_of(route: Any) -> frozenset[str] | None:
    """The roles a route's ``require`` dependency allows; ``None`` when the route has no ``require``."""
    found: list[frozenset[str]] = []

    def walk(dependant: Any) -> None:
        for dep in getattr(dependant, "dependencies", []):
            roles = getattr(dep.call, "allowed_roles", None)
            if roles is not None:
                found.append(roles)
            walk(dep)

    walk(getattr(route, "dependant", None))
    if not found:
        return None
    result = found[0]
    for roles in found[1:]:
        result &= roles  # several require() on one route: all must pass
    return result


READ_ROLES = ("operator", "csms", "auditor")

# Least privilege inside POST /api/v1/certificates: the certificate kinds each role may request from a CSR. `csms`
# forwards what stations ask for (SignCertificate: ChargingStationCertificate, V2GCertificate); `operator` also runs
# contracts. Certificates every station or EV trusts as infrastructure (CSMS server, CPS signer, OEM provisioning)
# are admin-only. A role missing here may request nothing.
ISSUABLE_KINDS: dict[str, frozenset[str]] = {
    "operator": frozenset({"station-client", "secc-leaf", "contract-leaf"}),
    "csms": frozenset({"station-client", "secc-leaf"}),
}


def require_issuable(services: Services, request: Request, actor: Actor, kind: str) -> None:
    """Refuse (403, audited as ``auth.denied``) a certificate kind the caller's role may not request."""
    if actor.role == "admin" or kind in ISSUABLE_KINDS.get(actor.role, frozenset()):
        return
    _audit_failure(services, request, f"role {actor.role} may not request {kind} certificates", "auth.denied",
                   actor.label)
    allowed = ", ".join(sorted(ISSUABLE_KINDS.get(actor.role, frozenset()))) or "none"
    raise Forbidden(f"role {actor.role!r} may not request {kind} certificates; allowed kinds: {allowed}")
