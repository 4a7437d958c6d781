"""REST and CLI revocation, the hash-data endpoint, roles."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.context import Services
from pki.hashdata import certificate_hash_data
from tests.api.conftest import token_for
from tests.api.ocsp.conftest import issue_station
from tests.helpers import pem


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_revoke_by_id_and_serial_roles_and_404(client: TestClient, services: Services) -> None:
    issued = issue_station(services)
    op = token_for(services, "operator")
    csms = token_for(services, "csms")
    r = client.post(f"/api/v1/certificates/{issued.record.id}/revoke", json={"reason": "superseded"},
                    headers=_auth(csms))
    assert r.status_code == 403
    r = client.post(f"/api/v1/certificates/{issued.record.id}/revoke", json={"reason": "superseded"},
                    headers=_auth(op))
    assert r.status_code == 200 and r.json()["changed"] and r.json()["certificate"]["revocation_reason"] == "superseded"
    r = client.post(f"/api/v1/certificates/serial/{issued.serial.upper()}/revoke", json={"reason": "superseded"},
                    headers=_auth(op))
    assert r.status_code == 200 and r.json()["changed"] is False
    r = client.post("/api/v1/certificates/serial/DEADBEEF01/revoke", json={"reason": "keyCompromise"},
                    headers=_auth(op))
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "NotFound"
    r = client.post("/api/v1/certificates/serial/zz/revoke", json={"reason": "keyCompromise"}, headers=_auth(op))
    assert r.status_code == 400
    r = client.post(f"/api/v1/certificates/{issued.record.id}/revoke", json={"reason": "nope"}, headers=_auth(op))
    assert r.status_code == 400 and r.json()["code"] == "InvalidReason"


def test_revoking_a_ca_certificate_marks_the_ca(client: TestClient, services: Services, admin_token: str) -> None:
    sub = services.authority.ca("cps-sub2")
    r = client.post(f"/api/v1/certificates/{sub.certificate_id}/revoke", json={"reason": "cACompromise"},
                    headers=_auth(admin_token))
    assert r.status_code == 200
    assert client.get("/api/v1/cas/cps-sub2", headers=_auth(admin_token)).json()["status"] == "revoked"


def test_hash_data_endpoint(client: TestClient, services: Services) -> None:
    issued = issue_station(services)
    issuer = services.authority.ca_certificate(services.authority.ca("csms-sub"))
    body = certificate_hash_data(issued.certificate, issuer).to_ocpp()
    token = token_for(services, "csms")
    r = client.post("/api/v1/ocsp/hash-data", json=body, headers=_auth(token))
    assert r.status_code == 200 and r.json()["certStatus"] == "good" and r.json()["responseStatus"] == "successful"
    resp = ocsp.load_der_ocsp_response(base64.b64decode(r.json()["ocspResult"]))
    assert resp.serial_number == issued.certificate.serial_number
    assert len(r.json()["ocspResult"]) <= 5500  # fits OCPP 2.0.1 GetCertificateStatusResponse.ocspResult
    r = client.post("/api/v1/ocsp/hash-data", json={**body, "hashAlgorithm": "SHA1"}, headers=_auth(token))
    assert r.status_code == 422
    auditor = token_for(services, "auditor")
    assert client.post("/api/v1/ocsp/hash-data", json=body, headers=_auth(auditor)).status_code == 403


@pytest.fixture
def cli_env(services: Services, monkeypatch: pytest.MonkeyPatch) -> Services:
    s = services.settings
    monkeypatch.setenv("PNC_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("PNC_KEY_PASSPHRASE", "test-pass")
    monkeypatch.setenv("PNC_DATABASE_URL", services.db.url)
    return services


def test_cli_revoke_and_crl(cli_env: Services, tmp_path: Path) -> None:
    from api.cli.main import app

    services = cli_env
    runner = CliRunner()
    a = issue_station(services, "CS0100")
    b = issue_station(services, "CS0101")
    res = runner.invoke(app, ["cert", "revoke", a.serial, "--reason", "keyCompromise"])
    assert res.exit_code == 0, res.output
    (tmp_path / "b.pem").write_bytes(pem(b.certificate))
    res = runner.invoke(app, ["cert", "revoke", "--file", str(tmp_path / "b.pem"), "--reason", "certificateHold"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["cert", "revoke", "abcdef0123", "--reason", "keyCompromise"])
    assert res.exit_code == 3
    res = runner.invoke(app, ["cert", "revoke", a.serial, "--reason", "bogus"])
    assert res.exit_code == 1
    assert services.authority.certificate(a.record.id or 0).status == "revoked"
    # the CLI signed fresh responses into the shared table: the server process picks them up by polling
    services.ocsp.sync_from_store()
    issuer = services.authority.ca_certificate(services.authority.ca("csms-sub"))
    der = services.ocsp.respond_to_hash_data(certificate_hash_data(a.certificate, issuer))
    assert ocsp.load_der_ocsp_response(der).certificate_status is ocsp.OCSPCertStatus.REVOKED
    res = runner.invoke(app, ["crl", "generate", "--ca", "csms-sub"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["crl", "show", "csms-sub"])
    assert res.exit_code == 0 and a.serial in res.output and b.serial in res.output
    res = runner.invoke(app, ["crl", "show", "csms-sub", "--pem"])
    assert res.output.startswith("-----BEGIN X509 CRL-----")
