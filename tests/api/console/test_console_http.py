"""The console over plain HTTP: the shell is public but data-free, data needs a token, the histogram endpoint."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from fastapi.testclient import TestClient

from api.console import PUBLIC_PATHS, STATIC
from api.context import Services
from api.routes_util import iter_routes
from pki.profiles import CertKind
from tests.api.conftest import token_for
from tests.helpers import make_csr, p256

EXTERNAL = re.compile(r"(?:https?:)?//(?!www\.w3\.org/2000/svg)[a-z0-9.-]+\.[a-z]{2,}", re.I)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_shell_is_the_static_files_and_nothing_else(client: TestClient) -> None:
    """Public routes serve exactly the shipped bytes (no templating, so no data can leak into them)."""
    files = {p.name: p.read_bytes() for p in STATIC.iterdir() if p.is_file()}
    assert {"index.html", "console.js", "console.css", "favicon.svg"} <= set(files)
    index = client.get("/console")
    assert index.status_code == 200 and index.content == files["index.html"]
    assert index.headers["content-type"].startswith("text/html")
    for name, body in files.items():
        resp = client.get(f"/console/{name}")
        assert resp.status_code == 200 and resp.content == body, name
    assert client.get("/console/", follow_redirects=False).headers["location"] == "/console"
    for bad in ("nope.js", "..%2Fapp.py", "%2e%2e%2f__init__.py", "__init__.py"):
        resp = client.get(f"/console/{bad}")
        assert resp.status_code == 404, bad
        assert resp.headers["content-type"].startswith("application/problem+json")


def test_console_routes_are_exactly_the_declared_public_shell(client: TestClient) -> None:
    console = {p for p, _m, _r in iter_routes(client.app.routes) if p.startswith("/console")}  # type: ignore[attr-defined]
    assert console == PUBLIC_PATHS


def test_strict_headers_and_revalidation(client: TestClient) -> None:
    resp = client.get("/console/console.js")
    csp = resp.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp and resp.headers["x-content-type-options"] == "nosniff"
    again = client.get("/console/console.js", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_no_external_resources_and_no_inline_script() -> None:
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not EXTERNAL.search(text), (path.name, EXTERNAL.search(text))
    index = (STATIC / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", index) == ['<script src="/console/console.js" defer>']
    assert " style=" not in index and "innerHTML" not in (STATIC / "console.js").read_text()


def test_console_kind_list_matches_the_profiles() -> None:
    js = (STATIC / "console.js").read_text()
    block = re.search(r"const KINDS = (\[.*?\]);", js, re.S)
    assert block is not None
    assert json.loads(re.sub(r",\s*\]", "]", block.group(1))) == [k.value for k in CertKind]


def test_data_the_console_reads_is_refused_without_a_token(client: TestClient) -> None:
    for path in ("/api/v1/cas", "/api/v1/certificates", "/api/v1/certificates/1",
                 "/api/v1/certificates/expiry-histogram", "/api/v1/certificates/1/download"):
        for headers in ({}, _auth("pnc_not-a-token")):
            resp = client.get(path, headers=headers)
            assert resp.status_code == 401, (path, headers, resp.status_code)


def test_expiry_histogram_endpoint(client: TestClient, services: Services) -> None:
    token = token_for(services, "auditor")
    csms = token_for(services, "csms")
    for days in (3, 40, 40):
        csr = make_csr(p256(), CN="SN-H", O="Test CPO").decode()
        resp = client.post("/api/v1/certificates", headers=_auth(csms),
                           json={"kind": "station-client", "csr": csr, "validity_days": days})
        assert resp.status_code == 201, resp.text
    week = client.get("/api/v1/certificates/expiry-histogram?bucket=week&periods=10", headers=_auth(token))
    assert week.status_code == 200, week.text
    body = week.json()
    assert len(body["buckets"]) == 10 and body["bucket"] == "week"
    assert sum(b["counts"].get("station-client", 0) for b in body["buckets"]) == 3
    assert "station-client" in body["kinds"] and body["expired"] == {}
    month = client.get("/api/v1/certificates/expiry-histogram?bucket=month&periods=480&kind=csms-root",
                       headers=_auth(token))
    assert month.status_code == 422  # more than MAX_BUCKETS
    roots = client.get("/api/v1/certificates/expiry-histogram?bucket=month&periods=260&kind=csms-root&kind=v2g-root",
                       headers=_auth(token)).json()
    assert set(roots["kinds"]) <= {"csms-root", "v2g-root"}
    by_issuer = client.get("/api/v1/certificates/expiry-histogram?issuer=csms-sub&kind=station-client",
                           headers=_auth(token)).json()
    assert sum(b["total"] for b in by_issuer["buckets"]) == 3
    assert client.get("/api/v1/certificates/expiry-histogram?kind=nope", headers=_auth(token)).status_code == 400
    assert client.get("/api/v1/certificates/expiry-histogram?issuer=nope", headers=_auth(token)).status_code == 404
    assert client.get("/api/v1/certificates/expiry-histogram?bucket=day", headers=_auth(token)).status_code == 422


def test_static_files_ship_in_the_wheel() -> None:
    """A non-editable install carries only declared package data: the console must be declared."""
    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    assert "static/*" in pyproject["tool"]["setuptools"]["package-data"]["api.console"]
