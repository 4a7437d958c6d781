"""Role x endpoint matrix, generated from the app's routes: every route is checked with no credentials and with a
token of every role against the roles its ``require(...)`` declares. A new route without ``require`` and without a
public/station declaration fails here."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.context import ROLES, Services
from api.deps import PUBLIC_ROUTES, STATION_ROUTES, allowed_roles_of
from api.routes_util import iter_routes
from tests.api.conftest import token_for

SAFE = {"GET", "HEAD"}


def _concrete(path: str) -> str:
    # unknown ids/names: handlers answer 404/422 for allowed roles, which is "not 401/403"
    return re.sub(r"\{[^}]+\}", "zz-matrix-probe", path).replace("{cert_id}", "1")


def _routes(client: TestClient) -> list[tuple[str, set[str], object]]:
    return list(iter_routes(client.app.routes))  # type: ignore[attr-defined]


def _undeclared(app_routes: list[object]) -> list[str]:
    undeclared = []
    for path, methods, route in iter_routes(app_routes):
        if "WEBSOCKET" in methods:
            if path not in STATION_ROUTES and path not in PUBLIC_ROUTES:
                undeclared.append(f"WS {path}")
        elif allowed_roles_of(route) is None and path not in PUBLIC_ROUTES:
            undeclared.append(f"{sorted(methods)} {path}")
    return undeclared


def test_every_route_declares_its_policy(client: TestClient) -> None:
    assert _undeclared(client.app.routes) == [], "routes without require(...) or a public/station declaration"  # type: ignore[attr-defined]


def test_a_forgotten_route_is_caught(services: Services) -> None:
    from fastapi import APIRouter, Depends

    from api.app import create_app
    from api.deps import require

    app = create_app(services=services)
    router = APIRouter(prefix="/api/v1/forgotten")

    @router.post("")
    def unprotected() -> dict[str, str]:
        return {}

    @router.get("/ok", dependencies=[Depends(require("auditor"))])
    def protected() -> dict[str, str]:
        return {}

    app.include_router(router)
    assert _undeclared(app.routes) == ["['POST'] /api/v1/forgotten"]


def test_role_endpoint_matrix(client: TestClient, services: Services) -> None:
    tokens = {role: token_for(services, role) for role in ROLES}
    checked = 0
    failures: list[str] = []
    for path, methods, route in _routes(client):
        if "WEBSOCKET" in methods:
            continue
        allowed = allowed_roles_of(route)
        url = _concrete(path)
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            anonymous = client.request(method, url).status_code
            if allowed is None:
                if anonymous in (401, 403):
                    failures.append(f"{method} {path}: public route answered {anonymous}")
                continue
            if anonymous != 401:
                failures.append(f"{method} {path}: anonymous got {anonymous}, expected 401")
            for role in ROLES:
                status = client.request(method, url, headers={"Authorization": f"Bearer {tokens[role]}"}).status_code
                expected_ok = role in allowed
                if expected_ok and status in (401, 403):
                    failures.append(f"{method} {path}: {role} allowed but got {status}")
                if not expected_ok and status != 403:
                    failures.append(f"{method} {path}: {role} not allowed but got {status}")
                checked += 1
    assert failures == []
    assert checked >= 4 * 10


def test_policy_invariants(client: TestClient) -> None:
    """What a CA auditor would demand of the table itself."""
    for path, methods, route in _routes(client):
        allowed = allowed_roles_of(route)
        if allowed is None:
            continue
        if methods - SAFE:
            assert "auditor" not in allowed, f"auditor is read-only, but may {methods} {path}"
        if path.startswith(("/api/v1/tokens", "/api/v1/client-certificates")):
            assert allowed == {"admin"}, f"{path}: credentials are admin-only"
        if path.startswith("/api/v1/audit") and methods <= SAFE:
            assert "auditor" in allowed
    assert "admin" in ROLES


@pytest.mark.parametrize("role", ROLES)
def test_forbidden_is_audited(client: TestClient, services: Services, role: str) -> None:
    from pki.store import repo

    token = token_for(services, role)
    r = client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"})
    denied = [e for e in repo.list_audit(services.db, limit=1000) if e.action == "auth.denied"]
    if role == "admin":
        assert r.status_code == 200 and not denied
    else:
        assert r.status_code == 403 and denied and denied[-1].actor == f"token:test-{role}"
