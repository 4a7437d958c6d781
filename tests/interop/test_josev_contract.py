"""Josev as the EV: it signs a CertificateInstallationReq with its OEM provisioning key; pnc-pki's ContractService
answers; Josev decodes the response with EXIficient, verifies the CPS signature and chain to the V2G root, decrypts
the contract key with the OEM key, and the key matches the contract certificate. Negative cases: a foreign signing
key, a foreign OEM root, a cancelled contract, an oversize request.

Needs the Josev venv (tests/interop/setup_josev.sh), Java, and the EXI codec in the build (pki.iso15118.exi);
skipped otherwise. The OCPP transport leg is covered by the OCPP endpoint's tests once both are merged.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
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
from tests.pki.iso15118.chains import oem_chain

REPO = Path(__file__).resolve().parents[2]
JOSEV = REPO / ".josev-venv" / "bin" / "python"
SCRIPT = Path(__file__).with_name("josev_ev.py")
NS2 = "urn:iso:15118:2:2013:MsgDef"
PCID = "WMIV1234567890ABCD"

pytestmark = [pytest.mark.interop, pytest.mark.oracle]


def _skip_reason() -> str | None:
    if not JOSEV.exists():
        return "Josev venv missing: run tests/interop/setup_josev.sh"
    if shutil.which("java") is None:
        return "java not found"
    if load_exi_codec() is None:
        return "ISO 15118 EXI codec (pki.iso15118.exi) not in this build yet"
    return None


class Josev:
    """One Josev process (one JVM) for the module; commands are JSON lines (see josev_ev.py)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([str(JOSEV), str(SCRIPT), "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def call(self, **command: object) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the Josev process exited")
        answer: dict[str, object] = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"Josev failed: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def josev_ev() -> Iterator[Josev]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    ev = Josev()
    try:
        yield ev
    finally:
        ev.close()


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
    files = {"key": tmp_path / "oem.key.pem", "cert": tmp_path / "oem.der", "root": tmp_path / "v2g-root.der"}
    files["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.DER))
    files["root"].write_bytes(pki.ca_certificate(pki.ca("v2g-root")).public_bytes(serialization.Encoding.DER))
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
