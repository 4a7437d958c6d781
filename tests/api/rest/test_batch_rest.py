"""POST /api/v1/certificates/batch: one outcome per CSR, the roles and limits of single issuance, larger bodies."""

from __future__ import annotations

from cryptography import x509
from fastapi.testclient import TestClient

from api.context import Services
from pki.profiles import CertKind, Generation
from pki.store import repo
from pki.store.models import CertStatus
from tests.api.conftest import token_for
from tests.helpers import make_csr, openssl_verify, p256, rsa_key

URL = "/api/v1/certificates/batch"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _item(cn: str, o: str = "Test CPO", **extra: str) -> dict[str, str]:
    return {"csr": make_csr(p256(), CN=cn, O=o).decode(), "owner": cn, **extra}


def test_a_batch_issues_each_acceptable_csr_and_explains_each_refusal(client: TestClient,
                                                                      services: Services) -> None:
    token = token_for(services, "operator")
    items = [_item("SN-1"), _item("SN-2", o="Other", expect_organization="Test CPO"), {"csr": "garbage"},
             {"csr": make_csr(rsa_key(1024), CN="SN-4", O="Test CPO").decode()}, _item("SN-5")]
    resp = client.post(URL, headers=_auth(token), json={"kind": "station-client", "items": items})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["issued"], body["refused"], body["failed"]) == (2, 3, 0)
    assert body["issuer"] == "csms-sub" and body["chain_pem"].count("BEGIN CERTIFICATE") == 1
    statuses = [(i["index"], i["status"]) for i in body["items"]]
    assert statuses == [(0, "issued"), (1, "refused"), (2, "refused"), (3, "refused"), (4, "issued")]
    codes = [i["problem"]["code"] for i in body["items"] if i["problem"]]
    assert codes == ["InvalidSubject", "InvalidRequest", "InvalidKey"]
    assert all(i["problem"]["type"].startswith("urn:pnc:problem:") for i in body["items"] if i["problem"])
    chain = x509.load_pem_x509_certificates(body["chain_pem"].encode())
    ca = services.authority.issuer_for(CertKind.STATION_CLIENT, Generation.OCPP)
    root = services.authority.ca_certificate(services.authority.root_of(ca))
    for item in body["items"]:
        if item["status"] == "issued":
            cert = x509.load_pem_x509_certificate(item["pem"].encode())
            openssl_verify(cert, chain, root)
            rec = repo.get_certificate(services.db, item["id"])
            assert rec is not None and rec.status == CertStatus.VALID and rec.serial == item["serial"]
            assert rec.actor == "token:test-operator"
    assert repo.count_certificates(services.db, status=CertStatus.PENDING) == 0


def test_the_roles_and_kinds_of_single_issuance_apply(client: TestClient, services: Services) -> None:
    auditor = client.post(URL, headers=_auth(token_for(services, "auditor")),
                          json={"kind": "station-client", "items": [_item("SN-1")]})
    assert auditor.status_code == 403
    csms = client.post(URL, headers=_auth(token_for(services, "csms")),
                       json={"kind": "csms-server", "items": [_item("csms.example.com")]})
    assert csms.status_code == 403 and "may not request csms-server" in csms.json()["detail"]
    assert client.post(URL, json={"kind": "station-client", "items": [_item("SN-1")]}).status_code == 401


def test_batch_level_errors_are_problem_json(client: TestClient, services: Services) -> None:
    token = token_for(services, "operator")
    empty = client.post(URL, headers=_auth(token), json={"kind": "station-client", "items": []})
    assert empty.status_code == 422 and empty.json()["code"] == "ValidationError"
    too_many = client.post(URL, headers=_auth(token),
                           json={"kind": "station-client", "items": [{"csr": "x"}] * 1001})
    assert too_many.status_code == 422
    kind = client.post(URL, headers=_auth(token), json={"kind": "nope", "items": [{"csr": "x"}]})
    assert kind.status_code == 400 and kind.json()["code"] == "InvalidRequest"
    ca = client.post(URL, headers=_auth(token), json={"kind": "station-client", "issuer": "no-such-ca",
                                                      "items": [{"csr": "x"}]})
    assert ca.status_code == 404
    days = client.post(URL, headers=_auth(token), json={"kind": "station-client", "validity_days": 30000,
                                                        "items": [_item("SN-9")]})
    assert days.status_code == 422 and days.json()["code"] == "PolicyViolation"
    assert repo.count_certificates(services.db, status=CertStatus.PENDING) == 0


def test_the_batch_path_takes_a_larger_body_than_single_issuance(client: TestClient, services: Services) -> None:
    token = token_for(services, "operator")
    items = [_item(f"SN-{i}") for i in range(150)]  # ~125 KB of JSON: over the 64 KiB cap of other routes
    resp = client.post(URL, headers=_auth(token), json={"kind": "station-client", "items": items})
    assert resp.status_code == 200 and resp.json()["issued"] == 150
    single = client.post("/api/v1/certificates", headers=_auth(token),
                         json={"kind": "station-client", "csr": "A" * 9000, "owner": "x" * 100,
                               "pad": "y" * 70_000})
    assert single.status_code == 413
