"""REST skeleton: authentication on everything but the public routes, problem+json errors, issuance."""

from __future__ import annotations

import stat

from cryptography import x509
from fastapi.testclient import TestClient

from api.console import PUBLIC_PATHS as CONSOLE_SHELL
from api.context import Services
from api.routes_util import iter_routes
from pki.profiles import CertKind, Generation
from pki.store import repo
from pki.store.models import CertStatus
from tests.api.conftest import token_for
from tests.helpers import make_csr, p256, rsa_key

PUBLIC_ROUTES = {"/health", "/ready", "/ready/ocsp", "/ca/{filename}", "/docs", "/docs/oauth2-redirect", "/openapi.json",
                 "/redoc"} | CONSOLE_SHELL  # the console shell carries no data (tests/api/console checks it)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_admin_token_file_is_private(services: Services, admin_token: str) -> None:
    path = services.settings.resolved_admin_token_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert admin_token.startswith("pnc_")


def test_every_non_public_route_requires_a_token(client: TestClient) -> None:
    """Generated from the app's routes, so a new route cannot be forgotten."""
    checked = 0
    for route_path, methods, _route in iter_routes(client.app.routes):  # type: ignore[attr-defined]
        if route_path in PUBLIC_ROUTES or "WEBSOCKET" in methods:
            continue
        path = route_path.replace("{cert_id}", "1").replace("{name}", "v2g-root")
        for method in methods:
            resp = client.request(method, path, json={})
            assert resp.status_code == 401, (method, path, resp.status_code)
            assert resp.headers["content-type"].startswith("application/problem+json")
            checked += 1
    assert checked >= 5


def test_bad_token_is_rejected_and_audited(client: TestClient, services: Services) -> None:
    resp = client.get("/api/v1/cas", headers=_auth("pnc_wrong"))
    assert resp.status_code == 401 and resp.json()["code"] == "Unauthorized"
    from pki.store import repo
    assert any(e.action == "auth.failure" for e in repo.list_audit(services.db, limit=100))


def test_list_and_show_cas(client: TestClient, admin_token: str) -> None:
    cas = client.get("/api/v1/cas", headers=_auth(admin_token)).json()
    names = {c["name"] for c in cas}
    assert {"v2g-root", "cpo-sub2", "mo-sub2", "oem-root", "csms-root", "csms-sub"} <= names
    one = client.get("/api/v1/cas/cpo-sub2", headers=_auth(admin_token)).json()
    assert one["parent"] == "cpo-sub1" and one["key_uri_scheme"] == "file"
    missing = client.get("/api/v1/cas/nope", headers=_auth(admin_token))
    assert missing.status_code == 404 and missing.json()["code"] == "NotFound"


def test_public_ca_download_matches_aia(client: TestClient, admin_token: str) -> None:
    der = client.get("/ca/cpo-sub2.der")
    assert der.status_code == 200 and der.headers["content-type"] == "application/pkix-cert"
    cert = x509.load_der_x509_certificate(der.content)
    assert "CPO Sub-CA 2" in cert.subject.rfc4514_string()
    assert client.get("/ca/cpo-sub2.pem").text.startswith("-----BEGIN CERTIFICATE-----")
    assert client.get("/ca/..%2Fetc.der").status_code in (400, 404)
    assert client.get("/ca/nope.der").status_code == 404


def test_issue_download_and_list(client: TestClient, services: Services) -> None:
    token = token_for(services, "csms")
    csr = make_csr(rsa_key(), CN="SN-77", O="Test CPO").decode()
    resp = client.post("/api/v1/certificates", headers=_auth(token),
                       json={"kind": "station-client", "csr": csr, "owner": "CS-77",
                             "expect_common_name": "SN-77", "expect_organization": "Test CPO"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["certificate"]["issuer"] == "csms-sub" and body["chain_pem"].count("BEGIN CERTIFICATE") == 2
    # AIA caIssuers in the issued certificate points at a URL this service answers
    cert = x509.load_pem_x509_certificate(body["pem"].encode())
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    ca_url = [a.access_location.value for a in aia if a.access_method._name == "caIssuers"][0]
    assert client.get(ca_url.replace("http://127.0.0.1:8080", "")).status_code == 200
    cid = body["certificate"]["id"]
    der = client.get(f"/api/v1/certificates/{cid}/download?format=der", headers=_auth(token))
    assert x509.load_der_x509_certificate(der.content).serial_number == cert.serial_number
    listed = client.get("/api/v1/certificates?owner=CS-77", headers=_auth(token)).json()
    assert [c["id"] for c in listed] == [cid]


def test_issue_refusals_are_problem_json(client: TestClient, services: Services) -> None:
    token = token_for(services, "operator")
    bad = client.post("/api/v1/certificates", headers=_auth(token),
                      json={"kind": "station-client", "csr": make_csr(rsa_key(1024), CN="SN-1", O="X").decode()})
    assert bad.status_code == 422 and bad.json()["code"] == "InvalidKey" and "RSA-1024" in bad.json()["detail"]
    garbage = client.post("/api/v1/certificates", headers=_auth(token), json={"kind": "station-client", "csr": "x"})
    assert garbage.status_code == 400 and garbage.json()["code"] == "InvalidRequest"
    kind = client.post("/api/v1/certificates", headers=_auth(token), json={"kind": "nope", "csr": "x"})
    assert kind.status_code == 400
    schema = client.post("/api/v1/certificates", headers=_auth(token), json={"csr": 5})
    assert schema.status_code == 422 and schema.json()["code"] == "ValidationError"
    big = client.post("/api/v1/certificates", headers=_auth(token), json={"kind": "secc-leaf", "csr": "A" * 20000})
    assert big.status_code == 422


def test_auditor_cannot_issue(client: TestClient, services: Services) -> None:
    token = token_for(services, "auditor")
    csr = make_csr(p256(), CN="SN-1", O="Test CPO").decode()
    resp = client.post("/api/v1/certificates", headers=_auth(token), json={"kind": "station-client", "csr": csr})
    assert resp.status_code == 403 and resp.json()["code"] == "Forbidden"
    assert client.get("/api/v1/certificates", headers=_auth(token)).status_code == 200


def _csr_for(kind: str) -> str:
    subjects = {
        "station-client": {"CN": "SN-K1", "O": "Test CPO"},
        "secc-leaf": {"CN": "DE*PNC*E77*1", "O": "Test CPO", "C": "DE", "DC": "CPO"},
        "contract-leaf": {"CN": "DEPNCC00000001A", "O": "Test MO", "C": "DE", "DC": "MO"},
        "csms-server": {"CN": "csms.example.com", "O": "Test CPO"},
        "cps-leaf": {"CN": "CPS Leaf", "O": "Test CPS", "C": "DE", "DC": "CPS"},
        "oem-prov-leaf": {"CN": "WMI12345678901234", "O": "Test OEM", "C": "DE", "DC": "OEM"},
    }
    return make_csr(p256(), **subjects[kind]).decode()


def test_each_role_may_request_only_its_certificate_kinds(client: TestClient, services: Services) -> None:
    """Least privilege inside the issuance endpoint: a CSMS token cannot mint a CSMS server, CPS signing, OEM
    provisioning or contract certificate; refusals are 403 problems and audited."""
    from api.deps import ISSUABLE_KINDS
    from pki.store import repo

    kinds = ["station-client", "secc-leaf", "contract-leaf", "csms-server", "cps-leaf", "oem-prov-leaf"]
    tokens = {role: token_for(services, role) for role in ("admin", "operator", "csms")}
    for role, token in tokens.items():
        for kind in kinds:
            resp = client.post("/api/v1/certificates", headers=_auth(token), json={"kind": kind, "csr": _csr_for(kind)})
            allowed = role == "admin" or kind in ISSUABLE_KINDS[role]
            if allowed:
                assert resp.status_code == 201, (role, kind, resp.text)
            else:
                assert resp.status_code == 403, (role, kind, resp.text)
                assert resp.headers["content-type"].startswith("application/problem+json")
                assert f"may not request {kind} certificates" in resp.json()["detail"]
    assert ISSUABLE_KINDS["csms"] == {"station-client", "secc-leaf"}  # what SignCertificate can ask for
    denied = [e for e in repo.list_audit(services.db, limit=1000) if e.action == "auth.denied"]
    assert any("may not request csms-server" in (e.details or "") and e.actor == "token:test-csms" for e in denied)


def test_missing_ca_key_is_a_retryable_503_and_loses_nothing(client: TestClient, services: Services) -> None:
    """A key the store cannot load (file moved, HSM session down) is the service's outage, not the caller's error:
    503 problem+json with Retry-After, and neither a certificate nor a pending record is left behind."""
    token = token_for(services, "csms")
    issuer = services.authority.issuer_for(CertKind.STATION_CLIENT, Generation.OCPP)
    key_file = services.settings.resolved_key_dir() / issuer.key_uri.removeprefix("file:")
    moved = key_file.with_name(key_file.name + ".away")
    key_file.rename(moved)
    services.keys._cache.pop(issuer.key_uri, None)  # as in a process that never loaded it
    try:
        csr = make_csr(p256(), CN="SN-503", O="Test CPO").decode()
        resp = client.post("/api/v1/certificates", headers=_auth(token),
                           json={"kind": "station-client", "csr": csr, "owner": "CS-503"})
        assert resp.status_code == 503, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.headers["retry-after"] == "5"
        body = resp.json()
        assert body["code"] == "KeyStoreError" and issuer.key_uri in body["detail"]
        assert repo.list_certificates(services.db, owner="CS-503") == []
        assert repo.list_certificates(services.db, owner="CS-503", status=CertStatus.PENDING) == []
    finally:
        moved.rename(key_file)
    again = client.post("/api/v1/certificates", headers=_auth(token),
                        json={"kind": "station-client", "csr": make_csr(p256(), CN="SN-504", O="Test CPO").decode()})
    assert again.status_code == 201, again.text
