"""Tokens (scoped, expiring, revocable), mTLS client certificates, audit over REST, request-size limits."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from fastapi.testclient import TestClient

from api.app import create_app
from api.context import Services, create_token
from pki.store import repo
from tests.helpers import make_csr, name, p256


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_lifecycle_over_rest(client: TestClient, admin_token: str, services: Services) -> None:
    r = client.post("/api/v1/tokens", json={"name": "csms-1", "role": "csms", "expires_days": 30},
                    headers=_auth(admin_token))
    assert r.status_code == 201, r.text
    body = r.json()
    token = body["token"]
    assert body["expires_at"] and token.startswith("pnc_")
    row = repo.get_token_by_name(services.db, "csms-1")
    assert row is not None and token not in row.token_hash and len(row.token_hash) == 64
    listing = client.get("/api/v1/tokens", headers=_auth(admin_token)).json()
    assert "csms-1" in [t["name"] for t in listing] and all("token" not in t for t in listing)
    assert client.get("/api/v1/cas", headers=_auth(token)).status_code == 200
    assert client.post("/api/v1/tokens", json={"name": "csms-1", "role": "csms"},
                       headers=_auth(admin_token)).status_code == 409
    assert client.post("/api/v1/tokens", json={"name": "x", "role": "root"},
                       headers=_auth(admin_token)).status_code == 400
    r = client.delete("/api/v1/tokens/csms-1", headers=_auth(admin_token))
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert client.get("/api/v1/cas", headers=_auth(token)).status_code == 401
    actions = [e.action for e in repo.list_audit(services.db, limit=1000)]
    assert "token.create" in actions and "token.revoke" in actions and "auth.failure" in actions


def test_expired_token_is_refused(client: TestClient, services: Services) -> None:
    token = create_token(services, "short", "auditor", expires_in=dt.timedelta(seconds=-1))
    assert client.get("/api/v1/cas", headers=_auth(token)).status_code == 401


def test_scopes_narrow_a_token(client: TestClient, services: Services) -> None:
    read_only = create_token(services, "ro-op", "operator", scopes=["read"])
    csr = make_csr(p256(), CN="CS500", O="Test CPO", C="DE").decode()
    r = client.post("/api/v1/certificates", json={"kind": "station-client", "csr": csr}, headers=_auth(read_only))
    assert r.status_code == 403 and "scopes" in r.json()["detail"]
    assert client.get("/api/v1/certificates", headers=_auth(read_only)).status_code == 200
    certs_only = create_token(services, "certs-op", "operator", scopes="certificates")
    assert client.get("/api/v1/cas", headers=_auth(certs_only)).status_code == 403
    r = client.post("/api/v1/certificates", json={"kind": "station-client", "csr": csr}, headers=_auth(certs_only))
    assert r.status_code == 201


def _client_cert() -> tuple[x509.Certificate, str]:
    key = p256()
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name(CN="backoffice-client")).issuer_name(name(CN="client CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert, cert.public_bytes(serialization.Encoding.PEM).decode()


class _TlsScope:
    """Stands in for an ASGI server that terminates mTLS and fills the ASGI ``tls`` extension."""

    def __init__(self, app: Any, pem: str) -> None:
        self.app, self.pem = app, pem

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}),
                                              "tls": {"client_cert_chain": [self.pem]}}}
        await self.app(scope, receive, send)


def test_mtls_client_certificate_via_asgi_tls_scope(client: TestClient, services: Services,
                                                    admin_token: str) -> None:
    cert, pem = _client_cert()
    app = create_app(services=services)
    with TestClient(_TlsScope(app, pem), raise_server_exceptions=False) as tls_client:  # type: ignore[arg-type]
        assert tls_client.get("/api/v1/cas").status_code == 401  # not registered yet
        r = client.post("/api/v1/client-certificates", json={"name": "backoffice", "role": "auditor",
                                                              "certificate_pem": pem}, headers=_auth(admin_token))
        assert r.status_code == 201, r.text
        assert r.json()["fingerprint_sha256"] == cert.fingerprint(hashes.SHA256()).hex()
        assert tls_client.get("/api/v1/cas").status_code == 200
        assert tls_client.get("/api/v1/audit").status_code == 200
        assert tls_client.get("/api/v1/tokens").status_code == 403  # auditor
        client.delete("/api/v1/client-certificates/backoffice", headers=_auth(admin_token))
        assert tls_client.get("/api/v1/cas").status_code == 401
    actors = {e.actor for e in repo.list_audit(services.db, limit=1000)}
    assert "cert:backoffice" in actors  # the auditor's 403 was recorded under its certificate identity


def test_mtls_header_only_from_trusted_proxy(services: Services, admin_token: str) -> None:
    _cert, pem = _client_cert()
    from api.context import bind_client_certificate

    bind_client_certificate(services, "via-proxy", "operator", pem.encode())
    header = {"x-client-cert": urllib.parse.quote(pem)}
    services.settings.mtls_header = "x-client-cert"
    services.settings.trusted_proxies = []
    with TestClient(create_app(services=services), raise_server_exceptions=False) as c:
        assert c.get("/api/v1/cas", headers=header).status_code == 401  # forged header from an untrusted peer
        services.settings.trusted_proxies = ["testclient"]
        assert c.get("/api/v1/cas", headers=header).status_code == 200


def test_audit_over_rest(client: TestClient, services: Services, admin_token: str) -> None:
    auditor = create_token(services, "aud", "auditor")
    entries = client.get("/api/v1/audit?limit=5", headers=_auth(auditor)).json()
    assert entries and [e["sequence"] for e in entries] == list(range(1, len(entries) + 1))
    assert client.post("/api/v1/audit/checkpoint", headers=_auth(auditor)).status_code == 403
    r = client.post("/api/v1/audit/checkpoint", headers=_auth(admin_token))
    assert r.status_code == 200 and r.json()["created"] is True
    v = client.get("/api/v1/audit/verify", headers=_auth(auditor)).json()
    assert v["ok"] is True and v["checkpoints_verified"] == 1, v["problems"]
    export = client.get("/api/v1/audit/export", headers=_auth(auditor))
    assert export.headers["content-type"].startswith("application/x-ndjson")
    assert export.text.count("\n") >= v["entries"] + 2


def test_request_size_limit_is_problem_json(client: TestClient, admin_token: str, services: Services) -> None:
    big = "A" * (services.settings.max_body_bytes + 1)
    r = client.post("/api/v1/certificates", content=big, headers={**_auth(admin_token),
                                                                   "content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"

    def chunks() -> Any:  # no Content-Length: the streamed body is counted
        for _ in range(100):
            yield b"B" * 1024

    r = client.post("/api/v1/certificates", content=chunks(), headers={**_auth(admin_token),
                                                                        "content-type": "application/json"})
    assert r.status_code == 413


def test_rate_limit_per_token(services: Services) -> None:
    from pki.ratelimit import RateLimiter

    services.token_limiter = RateLimiter(0.001, 3)
    token = create_token(services, "chatty", "auditor")
    with TestClient(create_app(services=services), raise_server_exceptions=False) as c:
        codes = [c.get("/api/v1/cas", headers=_auth(token)).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]


def test_failed_logins_cannot_flood_the_audit_log(services: Services) -> None:
    from pki.ratelimit import RateLimiter

    services.token_limiter = RateLimiter(0.001, 5)
    with TestClient(create_app(services=services), raise_server_exceptions=False) as c:
        codes = [c.get("/api/v1/cas", headers=_auth("pnc_guess")).status_code for _ in range(8)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3
    assert len(repo.list_audit(services.db, limit=10_000, action="auth.failure")) == 5
