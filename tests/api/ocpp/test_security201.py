"""OCPP 2.0.1 M06 GetCertificateStatus, C07 Authorize and M01 Get15118EVCertificate, driven by a real station."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from ocpp.v201 import call

from pki.identifiers import generate_emaid
from pki.profiles import CertKind
from tests.api.ocpp.conftest import Server, register, run
from tests.api.ocpp.stations_sim import connect, hash_data
from tests.helpers import make_csr, p256

pytestmark = pytest.mark.interop
EMAID = generate_emaid("DE", "PNC", "C12345678")


def ocsp_data(cert: x509.Certificate, issuer: x509.Certificate, url: str = "http://ocsp.example/") -> dict[str, str]:
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    return {"hashAlgorithm": "SHA256", "issuerNameHash": req.issuer_name_hash.hex(),
            "issuerKeyHash": req.issuer_key_hash.hex(), "serialNumber": format(cert.serial_number, "x"),
            "responderURL": url}


def issue_secc(server: Server) -> tuple[x509.Certificate, x509.Certificate]:
    auth = server.services.authority
    issued = auth.issue_from_csr(make_csr(p256(), CN="DE*PNC*E12345*1", O="Test CPO", DC="CPO"), CertKind.SECC_LEAF)
    return issued.certificate, issued.chain[0]


def issue_contract(server: Server, emaid: str = EMAID) -> Any:
    return server.services.authority.issue_from_csr(make_csr(p256(), CN=emaid, O="Test MO", DC="MO"),
                                                    CertKind.CONTRACT_LEAF)


def mark_revoked(server: Server, cert_id: int) -> None:
    """Revoke through the revocation service, so the OCSP pre-signed cache and CRLs see it at once."""
    from pki.revocation import revoke

    services = server.services
    rec = services.authority.certificate(cert_id)
    revoke(services.authority, rec, "keyCompromise", actor="test",
           listeners=tuple(getattr(services, n).on_revocation for n in ("ocsp", "crl")
                           if hasattr(getattr(services, n, None), "on_revocation")))


async def _status(server: Server, data: dict[str, str]) -> Any:
    async with connect(server.url, "GS1") as cp:
        return await cp.call(call.GetCertificateStatus(ocsp_request_data=data))


def test_get_certificate_status_without_the_local_responder_fails_with_a_reason(server: Server) -> None:
    register(server.services, "GS1")
    leaf, sub2 = issue_secc(server)
    saved = getattr(server.services, "ocsp", None)
    server.services.ocsp = None  # type: ignore[attr-defined]  # e.g. a deployment with the responder disabled
    try:
        r = run(_status(server, ocsp_data(leaf, sub2)))
    finally:
        server.services.ocsp = saved  # type: ignore[attr-defined]
    assert r.status == "Failed" and r.status_info["reason_code"] == "OcspUnavailable"


def test_get_certificate_status_good_then_revoked_from_the_local_responder(server: Server) -> None:
    pytest.importorskip("pki.ocsp")
    from pki.revocation import revoke  # type: ignore[import-not-found]

    register(server.services, "GS1")
    leaf, sub2 = issue_secc(server)
    services = server.services
    for expected in (ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED):
        r = run(_status(server, ocsp_data(leaf, sub2)))
        assert r.status == "Accepted"
        resp = ocsp.load_der_ocsp_response(base64.b64decode(r.ocsp_result))
        assert resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        assert resp.serial_number == leaf.serial_number and resp.certificate_status is expected
        if expected is ocsp.OCSPCertStatus.GOOD:
            rec = services.authority.certificate_by_serial(format(leaf.serial_number, "x"))
            revoke(services.authority, rec, "keyCompromise", actor="test",
                   listeners=tuple(getattr(services, n).on_revocation for n in ("ocsp", "crl")
                                   if hasattr(getattr(services, n, None), "on_revocation")))


class _Upstream(BaseHTTPRequestHandler):
    """A foreign OCSP responder (its own CA), answering good for anything: stands in for an allow-listed upstream."""

    ca_key = p256()
    ca = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=Foreign CA"))
          .issuer_name(x509.Name.from_rfc4514_string("CN=Foreign CA")).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    hits: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.hits.append(body)
        req = ocsp.load_der_ocsp_request(body)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        der = (ocsp.OCSPResponseBuilder().add_response_by_hash(
            req.issuer_name_hash, req.issuer_key_hash, req.serial_number, req.hash_algorithm,
            ocsp.OCSPCertStatus.GOOD, now, now + dt.timedelta(days=1), None, None)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca).sign(self.ca_key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER))
        self.send_response(200)
        self.send_header("content-type", "application/ocsp-response")
        self.send_header("content-length", str(len(der)))
        self.end_headers()
        self.wfile.write(der)

    def log_message(self, *args: Any) -> None:
        pass


def test_foreign_issuers_only_go_to_allow_listed_responders(server: Server) -> None:
    register(server.services, "GS1")
    httpd = HTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    allowed = f"http://127.0.0.1:{httpd.server_port}/ocsp"
    server.runtime.settings.upstream_ocsp_responders = [allowed]
    key = p256()
    foreign_leaf = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=x"))
                    .issuer_name(_Upstream.ca.subject).public_key(key.public_key()).serial_number(77)
                    .not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
                    .sign(_Upstream.ca_key, hashes.SHA256()))
    try:
        refused = run(_status(server, ocsp_data(foreign_leaf, _Upstream.ca, "http://attacker.example/ocsp")))
        assert refused.status == "Failed" and refused.status_info["reason_code"] == "UnknownIssuer"
        assert _Upstream.hits == []
        answered = run(_status(server, ocsp_data(foreign_leaf, _Upstream.ca, allowed)))
        assert answered.status == "Accepted" and len(_Upstream.hits) == 1
        resp = ocsp.load_der_ocsp_response(base64.b64decode(answered.ocsp_result))
        assert resp.serial_number == 77 and resp.certificate_status is ocsp.OCSPCertStatus.GOOD
    finally:
        httpd.shutdown()


def _pem_chain(issued: Any) -> str:
    return issued.chain_pem()  # type: ignore[no-any-return]


def test_authorize_with_contract_chain_and_hash_data(server: Server) -> None:
    register(server.services, "AU1")
    contract = issue_contract(server)
    other = issue_contract(server, generate_emaid("DE", "PNC", "C99999999"))
    mo_sub2 = contract.chain[0]
    token = {"id_token": EMAID, "type": "eMAID"}
    foreign_key = p256()
    foreign = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string(f"CN={EMAID}"))
               .issuer_name(x509.Name.from_rfc4514_string("CN=Nobody")).public_key(foreign_key.public_key())
               .serial_number(5).not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
               .sign(foreign_key, hashes.SHA256()))
    foreign_pem = foreign.public_bytes(serialization.Encoding.PEM).decode()

    async def station() -> list[Any]:
        async with connect(server.url, "AU1") as cp:
            out = []
            for kwargs in (
                {"certificate": _pem_chain(contract)},
                {"certificate": _pem_chain(other)},  # valid chain, but not this eMAID
                {"certificate": foreign_pem},
                {"iso15118_certificate_hash_data": [ocsp_data(contract.certificate, mo_sub2)]},
                {},
            ):
                out.append(await cp.call(call.Authorize(id_token=token, **kwargs)))
            await asyncio.to_thread(mark_revoked, server, contract.record.id)
            out.append(await cp.call(call.Authorize(id_token=token, certificate=_pem_chain(contract))))
            out.append(await cp.call(call.Authorize(
                id_token=token, iso15118_certificate_hash_data=[ocsp_data(contract.certificate, mo_sub2)])))
            return out

    answers = run(station())
    assert isinstance(answers, list)
    got = [(a.id_token_info["status"], a.certificate_status) for a in answers]
    assert got == [("Accepted", "Accepted"), ("Invalid", "ContractCancelled"), ("Invalid", "CertChainError"),
                   ("Accepted", "Accepted"), ("Unknown", "NoCertificateAvailable"),
                   ("Invalid", "CertificateRevoked"), ("Invalid", "CertificateRevoked")]


def test_get_15118_ev_certificate_with_garbage_exi_fails_cleanly(server: Server) -> None:
    """Routed to the contract service over a real connection: a broken EXI request is Failed with a reason."""
    register(server.services, "EV1")

    async def station() -> Any:
        async with connect(server.url, "EV1") as cp:
            return await cp.call(call.Get15118EVCertificate(
                iso15118_schema_version="urn:iso:15118:2:2013:MsgDef", action="Install",
                exi_request=base64.b64encode(b"\x80\x98\x02").decode()))

    r = run(station())
    assert r.status == "Failed" and r.exi_response == ""
    assert r.status_info["reason_code"] and r.status_info["reason_code"] != "NoContractService"


def test_hash_data_helper_matches_pki_hashdata() -> None:
    key = p256()
    cert = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=r"))
            .issuer_name(x509.Name.from_rfc4514_string("CN=r")).public_key(key.public_key()).serial_number(4095)
            .not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
            .sign(key, hashes.SHA256()))
    from pki.hashdata import HashAlgorithm, certificate_hash_data

    assert hash_data(cert, "SHA512") == certificate_hash_data(cert, None, HashAlgorithm.SHA512).to_ocpp()
    assert hash_data(cert)["serialNumber"] == "fff"


def test_authorize_with_a_contract_under_an_imported_mo_root(server: Server) -> None:
    """A foreign eMSP's MO root (and sub-CAs) imported into the trust store makes its contracts authorise;
    without the import, or after removal, the chain has no trusted root."""
    from pki.iso15118.trust import TrustStore
    from tests.pki.iso15118.chains import make

    register(server.services, "AU2")
    emaid = generate_emaid("NL", "EMP", "C00000042")
    root = make("Foreign eMSP MO Root", None, ca=True, dc="MO", days=3650)
    sub1 = make("Foreign eMSP MO Sub1", root, ca=True, pathlen=1, dc="MO")
    sub2 = make("Foreign eMSP MO Sub2", sub1, ca=True, pathlen=0, dc="MO")
    leaf = make(emaid, sub2, ca=False, dc="MO")
    pem_of = [n.cert.public_bytes(serialization.Encoding.PEM).decode() for n in (leaf, sub2, sub1, root)]
    token = {"id_token": emaid, "type": "eMAID"}
    trust = server.services.contracts.trust
    assert isinstance(trust, TrustStore)

    async def authorize(chain: str) -> tuple[str, str]:
        async with connect(server.url, "AU2") as cp:
            a = await cp.call(call.Authorize(id_token=token, certificate=chain))
            return a.id_token_info["status"], a.certificate_status

    def answer(chain: str) -> object:
        return run(authorize(chain))

    assert answer(pem_of[0] + pem_of[1] + pem_of[2]) == ("Invalid", "CertChainError")  # not imported yet
    added = trust.add("".join(pem_of[1:]), "mo", label="Foreign eMSP", actor="test")  # sub-CAs before root
    assert len(added) == 3
    assert answer(pem_of[0] + pem_of[1] + pem_of[2]) == ("Accepted", "Accepted")  # without the root
    assert answer(pem_of[0]) == ("Accepted", "Accepted")  # sub-CAs completed from the trust store
    assert answer("".join(pem_of)) == ("Accepted", "Accepted")  # with the root
    other = make(generate_emaid("NL", "EMP", "C00000043"), sub2, ca=False, dc="MO")
    assert answer(other.cert.public_bytes(serialization.Encoding.PEM).decode()) == ("Invalid", "ContractCancelled")
    forged_sub2 = make("Foreign eMSP MO Sub2", sub1, ca=True, pathlen=0, dc="MO")  # same name, other key
    forged = make(emaid, forged_sub2, ca=False, dc="MO")
    assert answer(forged.cert.public_bytes(serialization.Encoding.PEM).decode()) == ("Invalid", "SignatureError")
    for anchor in added:
        trust.remove(str(anchor.id), actor="test")
    assert answer(pem_of[0] + pem_of[1] + pem_of[2]) == ("Invalid", "CertChainError")


def test_v16_pnc_authorize_and_get_certificate_status_through_data_transfer(server: Server) -> None:
    """OCA PnC application note over OCPP 1.6: the 2.0.1 payloads as JSON strings in DataTransfer, answered with
    the 2.0.1 response as a JSON string — the same contract checks and the same OCSP bytes as over 2.0.1."""
    from ocpp.v16 import call as call16

    register(server.services, "PN16")
    contract = issue_contract(server)
    leaf, sub2 = issue_secc(server)
    vendor = "org.openchargealliance.iso15118pnc"

    async def station() -> list[Any]:
        async with connect(server.url, "PN16", "ocpp1.6") as cp:
            out = []
            for message_id, payload in (
                ("Authorize", {"idToken": {"idToken": EMAID, "type": "eMAID"}, "certificate": _pem_chain(contract)}),
                ("Authorize", {"idToken": {"idToken": EMAID, "type": "eMAID"},
                               "iso15118CertificateHashData": [ocsp_data(contract.certificate, contract.chain[0])]}),
                ("GetCertificateStatus", {"ocspRequestData": ocsp_data(leaf, sub2)}),
            ):
                out.append(await cp.call(call16.DataTransfer(vendor_id=vendor, message_id=message_id,
                                                             data=json.dumps(payload))))
            await asyncio.to_thread(mark_revoked, server, contract.record.id)
            out.append(await cp.call(call16.DataTransfer(vendor_id=vendor, message_id="Authorize", data=json.dumps(
                {"idToken": {"idToken": EMAID, "type": "eMAID"}, "certificate": _pem_chain(contract)}))))
            return out

    answers = run(station())
    assert isinstance(answers, list) and all(a.status == "Accepted" for a in answers)
    inner = [json.loads(a.data) for a in answers]
    assert [(i["idTokenInfo"]["status"], i["certificateStatus"]) for i in (inner[0], inner[1], inner[3])] == \
        [("Accepted", "Accepted"), ("Accepted", "Accepted"), ("Invalid", "CertificateRevoked")]
    assert inner[2]["status"] == "Accepted"
    resp = ocsp.load_der_ocsp_response(base64.b64decode(inner[2]["ocspResult"]))  # the station's own parser
    assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD and resp.serial_number == leaf.serial_number
