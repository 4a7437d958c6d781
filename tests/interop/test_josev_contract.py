"""Josev as the EV, in process: it signs a CertificateInstallationReq with its OEM provisioning key; pnc-pki's
ContractService answers (called directly); Josev decodes the response with EXIficient, verifies the CPS signature
and chain to the V2G root, decrypts the contract key with the OEM key, and the key matches the contract
certificate. Negative cases: a foreign signing key, a foreign OEM root, a cancelled contract, an oversize request.

The same exchange over a real OCPP connection (the `ocpp` package as the station, 2.0.1 / 2.1 / 1.6 DataTransfer,
uvicorn serving pnc-pki) is tests/api/ocpp/test_josev_ocpp.py.

Needs the Josev venv (tests/interop/setup_josev.sh or `make oracle`), Java, and the EXI codec in the build;
skipped otherwise.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.authority import Authority
from pki.clock import FixedClock
from pki.iso15118.cps import CpsProvisioner
from pki.iso15118.registry import ContractRegistry
from pki.iso15118.service import ContractService
from pki.iso15118.trust import TrustStore
from pki.iso15118.xmldsig import load_exi_codec
from pki.profiles import CertKind
from tests.interop.josev import Josev, josev_process, write_ev_files
from tests.pki.iso15118.chains import oem_chain

NS2 = "urn:iso:15118:2:2013:MsgDef"
PCID = "WMIV1234567890ABCD"

pytestmark = [pytest.mark.interop, pytest.mark.oracle]


@pytest.fixture(scope="module")
def josev_ev() -> Iterator[Josev]:
    yield from josev_process()


@pytest.fixture
def world(pki: Authority, tmp_path: Path, josev_ev: Josev) -> dict[str, object]:
    pki.clock = FixedClock(dt.datetime.now(dt.UTC))
    codec = load_exi_codec()
    svc = ContractService(pki, registry=ContractRegistry(pki.db, clock=pki.clock), trust=TrustStore(pki),
                          cps=CpsProvisioner(pki), codec=codec)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = pki.issue_for_public_key(CertKind.OEM_PROV_LEAF, x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, PCID), x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "OEM")]),
        key.public_key(), issuer=pki.ca("oem-sub2")).certificate
    files = write_ev_files(tmp_path, key, cert, pki.ca_certificate(pki.ca("v2g-root")))
    return {"svc": svc, "files": files, "tmp": tmp_path, "pki": pki, "ev": josev_ev}


def _request(world: dict[str, object], key_file: Path | None = None, cert_file: Path | None = None) -> str:
    f, ev = world["files"], world["ev"]
    assert isinstance(f, dict) and isinstance(ev, Josev)
    exi = ev.call(cmd="request", args=[str(key_file or f["key"]), str(cert_file or f["cert"]), str(f["root"]),
                                       "0A0B0C0D0E0F1011"])["exi"]
    assert isinstance(exi, str)
    return exi


def test_josev_accepts_our_certificate_installation_res(world: dict[str, object]) -> None:
    svc = world["svc"]
    assert isinstance(svc, ContractService)
    contract = svc.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    exi_req = _request(world)
    status, exi_res, reason, _ = svc.handle_get_15118_ev_certificate("CS-1", NS2, "Install", exi_req)
    assert status == "Accepted", reason
    assert len(exi_res) <= 7500
    f, ev = world["files"], world["ev"]
    assert isinstance(f, dict) and isinstance(ev, Josev)
    out = ev.call(cmd="response", args=[str(f["key"]), str(f["root"])], exi=exi_res)
    assert out["signature_ok"] is True and out["response_code"] == "OK"
    assert str(out["session_id"]).upper() == "0A0B0C0D0E0F1011"
    assert out["emaid"] == contract.emaid == out["contract_cn"]
    cert = x509.load_der_x509_certificate(base64.b64decode(str(out["contract_cert"])))
    key = ec.derive_private_key(int(str(out["private_key_hex"]), 16), ec.SECP256R1())
    assert key.public_key() == cert.public_key()


def test_negative_cases_with_josev_requests(world: dict[str, object]) -> None:
    svc = world["svc"]
    tmp = world["tmp"]
    assert isinstance(svc, ContractService) and isinstance(tmp, Path)
    contract = svc.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    # signed with a key that does not belong to the OEM provisioning certificate
    other = tmp / "other.key.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    r = svc.handle("CS-1", NS2, "Install", _request(world, key_file=other))
    assert (r.status, r.response_code) == ("Failed", "FAILED_SignatureError")
    # an OEM provisioning certificate from a root we do not trust
    *_, foreign = oem_chain("Foreign OEM", pcid=PCID)
    fkey, fcert = tmp / "f.key.pem", tmp / "f.der"
    fkey.write_bytes(foreign.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    fcert.write_bytes(foreign.cert.public_bytes(serialization.Encoding.DER))
    r = svc.handle("CS-1", NS2, "Install", _request(world, key_file=fkey, cert_file=fcert))
    assert (r.status, r.response_code) == ("Failed", "FAILED_CertChainError")
    # cancelled contract
    svc.registry.cancel(contract.emaid)
    r = svc.handle("CS-1", NS2, "Install", _request(world))
    assert (r.status, r.response_code) == ("Failed", "FAILED_ContractCanceled")
    # oversize request
    r = svc.handle("CS-1", NS2, "Install", "A" * 5604)
    assert r.status == "Failed" and "over the 5600" in (r.reason or "")
