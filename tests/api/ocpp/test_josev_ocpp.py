"""Plug & Charge end to end over the wire: Josev (the EV) -> an `ocpp` ChargePoint (the station) -> pnc-pki.

Josev builds and signs the ISO 15118-2 CertificateInstallationReq with its own models, EXIficient and
``create_signature``; the station, driven by the `ocpp` package's own ChargePoint over a real WebSocket to the
uvicorn-served app, forwards it as Get15118EVCertificate (OCPP 2.0.1; OCPP 2.1 with maximumContractCertificateChains
and prioritizedEMAIDs; OCPP 1.6 inside DataTransfer ``org.openchargealliance.iso15118pnc``); the exiResponse
pnc-pki returns goes back to Josev, which decodes it with EXIficient, verifies the CPS signature (digests
recomputed by EXIficient) and the CPS chain to the V2G root, and decrypts the contract private key with the OEM
provisioning key; the key must match the contract certificate. Failures travel the same way and come back as
status Failed with a reasonCode.

Needs the Josev venv (`make oracle` / tests/interop/setup_josev.sh) and Java; skipped otherwise.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.v16 import call as call16
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

from pki.profiles import CertKind
from pki.store import contract_repo
from tests.api.ocpp.conftest import Server, register, run
from tests.api.ocpp.stations_sim import connect
from tests.interop.josev import Josev, josev_process, write_ev_files

pytestmark = [pytest.mark.interop, pytest.mark.oracle]
NS2 = "urn:iso:15118:2:2013:MsgDef"
PCID = "WMIV1234567890ABCD"
SESSION = "0A0B0C0D0E0F1011"
PNC = "org.openchargealliance.iso15118pnc"


@dataclass
class Get15118EVCertificate:
    """OCPP 2.1 Get15118EVCertificateRequest as the `ocpp` package would send it, but with the schema's spelling.

    ocpp 2.1.0's ``call.Get15118EVCertificate.prioritized_emaids`` camel-cases to ``prioritizedEmaids``, which
    its own 2.1 schema refuses (the field is ``prioritizedEMAIDs``); ``prioritized_e_m_a_i_ds`` camel-cases right.
    The class name is the action; everything else is the package's ChargePoint.call.
    """

    iso_15118_schema_version: str
    action: str
    exi_request: str
    maximum_contract_certificate_chains: int | None = None
    prioritized_e_m_a_i_ds: list[str] | None = None
    custom_data: dict[str, Any] | None = None


@pytest.fixture(scope="module")
def josev_ev() -> Iterator[Josev]:
    yield from josev_process()


class Ev:
    """The vehicle: an OEM provisioning key/certificate from our OEM Sub-CA 2 (CN = PCID), driven by Josev."""

    def __init__(self, server: Server, josev: Josev, tmp: Path) -> None:
        auth = server.services.authority
        self.key = ec.generate_private_key(ec.SECP256R1())
        cert = auth.issue_for_public_key(CertKind.OEM_PROV_LEAF, x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, PCID), x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "OEM")]),
            self.key.public_key(), issuer=auth.ca("oem-sub2")).certificate
        self.files = write_ev_files(tmp, self.key, cert, auth.ca_certificate(auth.ca("v2g-root")))
        self.josev = josev
        self.tmp = tmp

    def request(self, key_file: Path | None = None) -> str:
        f = self.files
        exi = self.josev.call(cmd="request", args=[str(key_file or f["key"]), str(f["cert"]), str(f["root"]),
                                                   SESSION])["exi"]
        assert isinstance(exi, str)
        return exi

    def accept(self, exi_response: str) -> dict[str, object]:
        """Josev's processing of the response; returns what it found (asserting the EV would install it)."""
        out = self.josev.call(cmd="response", args=[str(self.files["key"]), str(self.files["root"])],
                              exi=exi_response)
        assert out["signature_ok"] is True and out["response_code"] == "OK"
        assert str(out["session_id"]).upper() == SESSION
        assert out["emaid"] == out["contract_cn"]
        cert = x509.load_der_x509_certificate(base64.b64decode(str(out["contract_cert"])))
        key = ec.derive_private_key(int(str(out["private_key_hex"]), 16), ec.SECP256R1())
        assert key.public_key() == cert.public_key()  # the decrypted key belongs to the contract certificate
        return out

    def foreign_key_file(self) -> Path:
        path = self.tmp / "other.key.pem"
        path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return path


@pytest.fixture
def ev(server: Server, josev_ev: Josev, tmp_path: Path) -> Ev:
    return Ev(server, josev_ev, tmp_path)


def _delivered(server: Server, emaid: str, contract_cert_b64: str) -> None:
    """The certificate Josev installed is the one pnc-pki recorded as the contract's current certificate."""
    row = contract_repo.get_contract_by_emaid(server.services.db, emaid)
    assert row is not None and row.certificate_id is not None
    rec = server.services.authority.certificate(row.certificate_id)
    cert = x509.load_der_x509_certificate(base64.b64decode(contract_cert_b64))
    assert int(rec.serial, 16) == cert.serial_number


def test_ocpp201_install_accepted_by_josev(server: Server, ev: Ev) -> None:
    register(server.services, "JV201")
    contract = server.services.contracts.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    exi_request = ev.request()
    tampered = ev.request(key_file=ev.foreign_key_file())

    async def station() -> tuple[Any, Any]:
        async with connect(server.url, "JV201", "ocpp2.0.1") as cp:
            ok = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=NS2, action="Install",
                                                             exi_request=exi_request))
            bad = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=NS2, action="Install",
                                                              exi_request=tampered))
            return ok, bad

    result = run(station(), timeout=60)
    assert isinstance(result, tuple)
    ok, bad = result
    assert ok.status == "Accepted" and ok.status_info is None and len(ok.exi_response) <= 7500
    out = ev.accept(ok.exi_response)
    assert out["emaid"] == contract.emaid
    _delivered(server, contract.emaid, str(out["contract_cert"]))
    assert bad.status == "Failed" and bad.status_info["reason_code"] == "SignatureError"


def test_ocpp21_install_with_prioritized_emaids_accepted_by_josev(server: Server, ev: Ev) -> None:
    register(server.services, "JV21")
    registry = server.services.contracts.registry
    wanted = registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    newer = registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    exi_request = ev.request()

    async def station() -> tuple[Any, Any]:
        async with connect(server.url, "JV21", "ocpp2.1") as cp:
            chosen = await cp.call(Get15118EVCertificate(
                iso_15118_schema_version=NS2, action="Install", exi_request=exi_request,
                maximum_contract_certificate_chains=1, prioritized_e_m_a_i_ds=[wanted.emaid]))
            default = await cp.call(call21.Get15118EVCertificate(
                iso_15118_schema_version=NS2, action="Install", exi_request=exi_request))
            return chosen, default

    result = run(station(), timeout=60)
    assert isinstance(result, tuple)
    chosen, default = result
    assert chosen.status == "Accepted" and chosen.remaining_contracts == 0, chosen  # -2 has no looping
    assert ev.accept(chosen.exi_response)["emaid"] == wanted.emaid  # the EV's prioritised EMAID
    assert default.status == "Accepted" and default.remaining_contracts is None
    assert ev.accept(default.exi_response)["emaid"] == newer.emaid  # no preference: the most recent contract


def test_ocpp16_data_transfer_install_accepted_by_josev(server: Server, ev: Ev) -> None:
    register(server.services, "JV16")
    contract = server.services.contracts.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    exi_request = ev.request()

    def wrapped(exi: str) -> Any:
        return call16.DataTransfer(vendor_id=PNC, message_id="Get15118EVCertificate", data=json.dumps(
            {"iso15118SchemaVersion": NS2, "action": "Install", "exiRequest": exi}))

    async def station() -> tuple[Any, Any]:
        async with connect(server.url, "JV16", "ocpp1.6") as cp:
            ok = await cp.call(wrapped(exi_request))
            server.services.contracts.registry.cancel(contract.emaid)
            cancelled = await cp.call(wrapped(exi_request))
            return ok, cancelled

    result = run(station(), timeout=60)
    assert isinstance(result, tuple)
    ok, cancelled = result
    assert ok.status == "Accepted"
    inner = json.loads(ok.data)
    assert inner["status"] == "Accepted" and set(inner) == {"status", "exiResponse"}
    out = ev.accept(inner["exiResponse"])
    assert out["emaid"] == contract.emaid
    _delivered(server, contract.emaid, str(out["contract_cert"]))
    assert cancelled.status == "Accepted"  # the DataTransfer was understood; the inner answer is Failed
    failed = json.loads(cancelled.data)
    assert failed["status"] == "Failed" and failed["statusInfo"]["reasonCode"] == "ContractCanceled"
