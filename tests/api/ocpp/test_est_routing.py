"""SECC certificates from an upstream EST CA, routed per station by PNC_CONTRACT_ROUTING ("est" section).

The app is built from Settings(contract_routing=...) exactly as in production; the EST peer is the fake OPCP
server (tests/pki/iso15118/fake_pool.py: OAuth2 token endpoint + est.v1.json simpleenroll) on a real port, and
the station is the `ocpp` package's ChargePoint over a real WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from api.settings import Settings
from pki.store import ocpp_repo, repo
from tests.api.ocpp.conftest import Server, register, run
from tests.api.ocpp.stations_sim import connect
from tests.api.ocpp.test_ocpp201 import verify_chain
from tests.pki.iso15118.fake_pool import FakePool

pytestmark = pytest.mark.interop


@pytest.fixture
def pool() -> Iterator[FakePool]:
    with FakePool() as p:
        yield p


@pytest.fixture
def settings(tmp_path: Path, pool: FakePool, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PNC_TEST_EST_SECRET", pool.state.client_secret)
    routing = {"est": {
        "providers": {"public-pki": {"base_url": pool.url, "ca": "cpo", "token_url": f"{pool.url}/oauth/token",
                                     "client_id": pool.state.client_id, "client_secret_env": "PNC_TEST_EST_SECRET",
                                     "audience": "https://est.example"}},
        "stations": {"HUB-*": "public-pki", "*": "local"}}}
    return Settings(data_dir=tmp_path / "var", key_passphrase="test-pass", with_iso15118_20=False,
                    organization="Test CPO", country="DE", contract_routing=json.dumps(routing))


def _sign(server: Server, station_id: str, *cert_types: str) -> list[dict[str, Any]]:
    """SignCertificate for each type on one connection; the CertificateSigned of each, matched by type (a
    redelivery of an earlier one, whose answer the outbox may not have recorded yet, is skipped)."""
    async def station() -> list[dict[str, Any]]:
        out = []
        async with connect(server.url, station_id) as cp:
            for cert_type in cert_types:
                r = await cp.call(cp.call_mod.SignCertificate(csr=cp.csr(cert_type), certificate_type=cert_type))
                assert r.status == "Accepted"
                while (signed := await asyncio.wait_for(cp.signed.get(), 10))["certificate_type"] != cert_type:
                    pass
                out.append(signed)
        return out

    result = run(station())
    assert isinstance(result, list)
    return result


def test_routed_station_gets_its_secc_certificate_from_the_est_ca(server: Server, pool: FakePool) -> None:
    register(server.services, "HUB-1")
    signed, own = _sign(server, "HUB-1", "V2GCertificate", "ChargingStationCertificate")
    certs = x509.load_pem_x509_certificates(signed["certificateChain"].encode())
    fake_ca = pool.app.state.ca_cert
    assert len(certs) == 1 and certs[0].issuer == fake_ca.subject  # the EST CA's leaf; its root is not sent
    certs[0].verify_directly_issued_by(fake_ca)
    assert certs[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "DE*PNC*E12345*1"
    assert signed.get("certificate_type") == "V2GCertificate"
    enrolls = [r for r in pool.state.requests if r[1] == "/.well-known/est/cpo/simpleenroll/ISO15118-2"]
    assert len(enrolls) == 1 and enrolls[0][2]["authorization"] == "Bearer tok-1"  # OAuth2 client credentials
    audit = [e for e in repo.list_audit(server.services.db, limit=50) if e.action == "ocpp.sign_certificate.upstream"]
    assert audit and json.loads(audit[0].details or "{}")["est"] == "public-pki"
    # the station's charging-station certificate (not an SECC one) still comes from our CSMS hierarchy
    verify_chain(server, own["certificateChain"], "csms-root")
    assert len([r for r in pool.state.requests if "simpleenroll" in r[1]]) == 1


def test_unrouted_station_is_signed_locally(server: Server, pool: FakePool) -> None:
    register(server.services, "LOC-1")
    [signed] = _sign(server, "LOC-1", "V2GCertificate")
    verify_chain(server, signed["certificateChain"], "v2g-root")
    assert not [r for r in pool.state.requests if "simpleenroll" in r[1]]


def test_est_failure_is_recorded_and_nothing_is_delivered(server: Server, pool: FakePool) -> None:
    register(server.services, "HUB-2")
    pool.state.fail_next = [403]  # the EST CA refuses

    async def station() -> Any:
        async with connect(server.url, "HUB-2") as cp:
            r = await cp.call(cp.call_mod.SignCertificate(csr=cp.csr("V2GCertificate"),
                                                          certificate_type="V2GCertificate"))
            deadline = time.monotonic() + 10
            while not ocpp_repo.list_events(server.services.db, "HUB-2", kind="sign-failed"):
                assert time.monotonic() < deadline, "no sign-failed event"
                await asyncio.sleep(0.05)
            return r, cp.signed.empty()

    result = run(station())
    assert isinstance(result, tuple)
    answer, nothing_signed = result
    assert answer.status == "Accepted" and nothing_signed
    [event] = ocpp_repo.list_events(server.services.db, "HUB-2", kind="sign-failed")
    assert event.type == "UpstreamRejected" and "EST simpleenroll (cpo) failed: HTTP 403" in (event.payload or "")
    assert pool.state.client_secret not in (event.payload or "")


def test_est_routing_config_is_checked() -> None:
    from pki.errors import InvalidRequest
    from pki.iso15118.upstream import ProviderRouter

    spec = {"base_url": "https://est.example", "ca": "cpo"}
    router = ProviderRouter.from_config({"est": {"providers": {"e": spec}, "stations": {"A*": "e", "*": "local"}}})
    assert router.route_est("AB") is not None and router.route_est("AB").name == "e"  # type: ignore[union-attr]
    assert router.route_est("B") is None
    with pytest.raises(InvalidRequest, match="unknown provider 'x'"):
        ProviderRouter.from_config({"est": {"providers": {"e": spec}, "stations": {"*": "x"}}})
    with pytest.raises(InvalidRequest, match="EST ca"):
        ProviderRouter.from_config({"est": {"providers": {"e": {**spec, "ca": "nope"}}}})
    with pytest.raises(InvalidRequest, match="client_secret"):
        ProviderRouter.from_config({"est": {"providers": {"e": {**spec, "token_url": "https://t", "client_id": "c"}}}})
