"""PNC_KEY_SCHEME=pkcs11 wires the HSM into the running service: the dev PKI is created in the token and a REST
issuance chains to it (judged by openssl)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from fastapi.testclient import TestClient

from api.app import create_app
from api.context import bootstrap, build_services
from api.settings import Settings
from tests import softhsm as _softhsm
from tests.api.conftest import token_for
from tests.helpers import make_csr, openssl_verify, p256
from tests.softhsm import SoftHsm

pytestmark = pytest.mark.interop
hsm, softhsm_token = _softhsm.hsm, _softhsm.softhsm_token  # fixtures


def test_service_on_softhsm(tmp_path: Path, hsm: SoftHsm, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(data_dir=tmp_path / "var", key_passphrase="test-pass", with_iso15118_20=False,
                        organization="Test CPO", country="DE", key_scheme="pkcs11", pkcs11_module=hsm.module,
                        pkcs11_token=hsm.token, pkcs11_pin=hsm.pin)
    assert hsm.pin not in repr(settings)
    svc = build_services(settings)
    try:
        bootstrap(svc)
        cas = svc.authority.cas()
        assert cas and all(ca.key_uri.startswith(f"pkcs11:token={hsm.token};") for ca in cas)
        assert not list((tmp_path / "var").rglob("*.key.pem"))  # no key material on disk
        token = token_for(svc, "operator")
        with TestClient(create_app(services=svc), raise_server_exceptions=False) as client:
            csr = make_csr(p256(), CN="CS100", O="Test CPO", C="DE").decode()
            r = client.post("/api/v1/certificates", json={"kind": "station-client", "csr": csr},
                            headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 201, r.text
            certs = x509.load_pem_x509_certificates(r.json()["chain_pem"].encode())
            issuer = svc.authority.ca(r.json()["certificate"]["issuer"])
            root = svc.authority.ca_certificate(svc.authority.root_of(issuer))
            openssl_verify(certs[0], certs[1:], root)
        cp = svc.audit_log().checkpoint()  # the audit signing key is made in the token too
        assert cp is not None and cp.key_uri == f"pkcs11:token={hsm.token};object=audit-signing"
        assert svc.audit_log().verify().checkpoints_verified == 1
        assert hsm.pin not in caplog.text
    finally:
        svc.close()


def test_pkcs11_scheme_without_module_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="PNC_PKCS11_MODULE"):
        build_services(Settings(data_dir=tmp_path, key_passphrase="x", key_scheme="pkcs11"), migrate=False)
