"""ContractService: never raises, Failed with reasons, size limits, routing to upstream providers, no-codec mode."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.audit import AuditLog
from pki.authority import Authority
from pki.clock import FixedClock
from pki.iso15118.cps import CpsProvisioner
from pki.iso15118.registry import ContractRegistry
from pki.iso15118.service import NO_CODEC, ContractService
from pki.iso15118.trust import TrustStore
from pki.iso15118.upstream import ProviderRouter, UpstreamAnswer, UpstreamError
from pki.profiles import CertKind
from pki.store import repo
from tests.pki.iso15118 import ev
from tests.pki.iso15118.conftest import is_real_exi
from tests.pki.iso15118.fake_codec import FakeCodec

PCID = "WMIV1234567890ABCD"
NS2 = ev.NS2


@dataclass
class StubPool:
    name: str = "pool"
    answer: UpstreamAnswer | UpstreamError = field(default_factory=lambda: UpstreamAnswer("UE9PTA==", "DEHUB0000000012"))
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def get_signed_contract_data(self, exi_request_b64: str, namespace: str, *, station_id: str = "") -> UpstreamAnswer:
        self.seen.append((exi_request_b64, namespace, station_id))
        if isinstance(self.answer, UpstreamError):
            raise self.answer
        return self.answer


def make_service(a: Authority, codec: FakeCodec | None, router: ProviderRouter | None = None) -> ContractService:
    return ContractService(a, registry=ContractRegistry(a.db, clock=a.clock), trust=TrustStore(a),
                           cps=CpsProvisioner(a), codec=codec, router=router)


def test_without_codec_local_requests_fail_with_a_clear_reason(authority: Authority) -> None:
    svc = make_service(authority, None)
    status, exi, reason, remaining = svc.handle_get_15118_ev_certificate("CS-1", NS2, "Install", "AAAA")
    assert (status, exi, remaining) == ("Failed", "", None)
    assert reason == f"FAILED: {NO_CODEC}"
    assert repo.list_audit(authority.db)[-1].action == "contract.install"


@pytest.mark.parametrize(("args", "fragment"), [
    (("CS-1", NS2, "Delete", "AAAA"), "action must be Install or Update"),
    (("CS-1", "urn:unknown", "Install", "AAAA"), "unsupported iso15118SchemaVersion"),
    (("CS-1", NS2, "Install", "not base64!"), "not valid base64"),
    (("CS-1", NS2, "Install", ""), "empty"),
    (("CS-1", NS2, "Install", "A" * 5604), "over the 5600 allowed"),
])
def test_bad_requests_are_failed_not_raised(authority: Authority, args: tuple[str, str, str, str],
                                            fragment: str) -> None:
    result = make_service(authority, FakeCodec()).handle(*args)
    assert result.status == "Failed" and fragment in (result.reason or "") and result.reason_code == "Failed"


def test_ocpp21_allows_larger_requests(authority: Authority) -> None:
    result = make_service(authority, FakeCodec()).handle("CS-1", NS2, "Install", "A" * 5604, ocpp_version="2.1")
    assert "over the" not in (result.reason or "")


def test_local_install_through_the_service(pki: Authority, codec: Any) -> None:
    pki.clock = FixedClock(dt.datetime.now(dt.UTC))
    version = "2.0.1" if is_real_exi(codec) else "2.1"  # the JSON stand-in is ~2x larger than EXI
    svc = make_service(pki, codec)
    svc.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = pki.issue_for_public_key(CertKind.OEM_PROV_LEAF, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PCID)]),
                                    key.public_key(), issuer=pki.ca("oem-sub2")).certificate
    root = pki.ca_certificate(pki.ca("v2g-root"))
    exi_b64 = base64.b64encode(ev.install_request(codec, key, cert, [root])).decode()
    status, exi, reason, remaining = svc.handle_get_15118_ev_certificate("CS-1", NS2, "Install", exi_b64,
                                                                         ocpp_version=version)
    assert (status, reason, remaining) == ("Accepted", None, None)
    ev.check_response(codec, base64.b64decode(exi), "CertificateInstallationRes", key)
    # a foreign key signing -> Failed with the ISO code and a short reasonCode
    bad = base64.b64encode(ev.install_request(codec, ec.generate_private_key(ec.SECP256R1()), cert, [root])).decode()
    result = svc.handle("CS-1", NS2, "Install", bad, ocpp_version=version)
    assert result.status == "Failed" and result.response_code == "FAILED_SignatureError"
    assert result.reason_code == "SignatureError" and result.reason and result.reason.startswith("FAILED_SignatureError:")
    # the contract's creation and installation are in the tamper-evident chain (they were once added unchained,
    # which `pnc audit verify` reports as tampering)
    actions = {e.action for e in repo.list_audit(pki.db, limit=500)}
    assert {"contract.create", "contract.install"} <= actions, actions
    verdict = AuditLog(pki.db, pki.keys).verify()
    assert verdict.ok, verdict.problems


def test_routing_to_an_upstream_pool_needs_no_codec(authority: Authority) -> None:
    pool = StubPool()
    router = ProviderRouter({"pool": pool}, stations={"DE*HUB*": "pool"}, emsps={"DEHUB": "pool"})
    svc = make_service(authority, None, router)
    assert svc.handle_get_15118_ev_certificate("DE*HUB*E1", NS2, "Install", "AAAA") == ("Accepted", "UE9PTA==", None,
                                                                                          None)
    assert pool.seen == [("AAAA", NS2, "DE*HUB*E1")]
    # per-eMSP routing from the EV's prioritised EMAIDs (-20)
    res = svc.handle("CS-9", ev.NS20, "Install", "AAAA", prioritized_emaids=["DE-HUB-000000001-2"],
                     maximum_contract_certificate_chains=1)
    assert res.status == "Accepted" and res.provider == "pool"
    # a station not routed falls back to local, which has no codec here
    assert svc.handle("CS-9", NS2, "Install", "AAAA").reason == f"FAILED: {NO_CODEC}"
    pool.answer = UpstreamError("contract pool 'pool': no contract", code="FAILED_NoCertificateAvailable",
                                exi_response="TkVH")
    res = svc.handle("DE*HUB*E1", NS2, "Install", "AAAA")
    assert (res.status, res.exi_response, res.response_code) == ("Failed", "TkVH", "FAILED_NoCertificateAvailable")
    pool.answer = UpstreamAnswer("A" * 7501)
    assert "over the 7500" in (svc.handle("DE*HUB*E1", NS2, "Install", "AAAA").reason or "")


def test_unexpected_errors_become_failed(authority: Authority) -> None:
    class Broken(FakeCodec):
        def decode_message(self, data: bytes, namespace: str) -> dict[str, object]:
            raise ZeroDivisionError

    svc = make_service(authority, Broken())
    svc.installer.process = lambda *a, **k: 1 / 0  # type: ignore[assignment,union-attr]
    result = svc.handle("CS-1", NS2, "Install", "AAAA")
    assert result.status == "Failed" and result.reason == "FAILED: internal error while processing the certificate request"


@dataclass
class _Station:
    station_id: str
    ocpp_version: str | None


def test_handle_ocpp_request_builds_the_ocpp_payload(authority: Authority) -> None:
    """The call the OCPP endpoint makes (api/ocpp/core.py on the ocpp branch)."""
    pool = StubPool(answer=UpstreamAnswer("UE9PTA==", remaining=2))
    svc = make_service(authority, None, ProviderRouter({"pool": pool}, stations={"HUB-*": "pool"}))
    ok21 = svc.handle_ocpp_request(station=_Station("HUB-1", "ocpp2.1"), iso15118_schema_version=ev.NS20,
                                   action="Install", exi_request="AAAA",
                                   payload={"maximumContractCertificateChains": 3,
                                            "prioritizedEMAIDs": ["DEHUB0000000012"]})
    assert ok21 == {"status": "Accepted", "exiResponse": "UE9PTA==", "remainingContracts": 2}
    ok201 = svc.handle_ocpp_request(station=_Station("HUB-1", "2.0.1"), iso15118_schema_version=NS2,
                                    action="Install", exi_request="AAAA", payload={})
    assert ok201 == {"status": "Accepted", "exiResponse": "UE9PTA=="}  # no remainingContracts in 2.0.1
    failed = svc.handle_ocpp_request(station=_Station("CS-1", None), iso15118_schema_version=NS2,
                                     action="Install", exi_request="AAAA")
    assert failed["status"] == "Failed" and failed["exiResponse"] == ""
    assert failed["statusInfo"]["reasonCode"] == "Failed" and len(failed["statusInfo"]["additionalInfo"]) <= 512
