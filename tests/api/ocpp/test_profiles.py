"""Security profiles 2 (TLS + Basic) and 3 (client certificate) at the handshake; outbox durability and back-off."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import uvicorn
import websockets
from cryptography.hazmat.primitives import serialization
from ocpp.v201 import call

from api.app import create_app
from api.context import Services
from api.ocpp.runtime import OcppRuntime
from api.ocpp.settings import OcppSettings
from pki.clock import FixedClock
from pki.profiles import CertKind
from pki.store import ocpp_repo
from pki.store.ocpp_models import OcppOutbox, OutboxStatus
from tests.api.ocpp.conftest import Server, basic, free_port, register, run, stop_server
from tests.api.ocpp.stations_sim import CLASSES
from tests.helpers import make_csr, p256

pytestmark = pytest.mark.interop


def _client_cert(services: Services, cn: str, org: str = "Test CPO") -> str:
    issued = services.authority.issue_from_csr(make_csr(p256(), CN=cn, O=org), CertKind.STATION_CLIENT)
    return issued.pem()


async def _boot(url: str, sid: str, headers: dict[str, str], ssl_ctx: ssl.SSLContext | None = None) -> str:
    async with websockets.connect(f"{url}/{sid}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                  additional_headers=headers, ssl=ssl_ctx) as ws:
        cp = CLASSES["ocpp2.0.1"](sid, ws)
        import asyncio

        task = asyncio.create_task(cp.start())
        r = await cp.call(call.Heartbeat())
        task.cancel()
        return str(r.current_time)


def _status(url: str, sid: str, headers: dict[str, str]) -> int:
    async def attempt() -> int:
        try:
            await _boot(url, sid, headers)
        except websockets.InvalidStatus as exc:
            return exc.response.status_code
        return 101

    result = run(attempt())
    assert isinstance(result, int)
    return result


def test_profile_3_client_certificate_via_trusted_proxy_header(server: Server) -> None:
    register(server.services, "P3", serial="SN-P3", profile=3)
    server.runtime.settings.trusted_proxies = ["127.0.0.1"]
    good = _client_cert(server.services, "SN-P3")
    proxy = {"x-forwarded-proto": "https"}
    hdr = server.runtime.settings.client_cert_header
    assert _status(server.url, "P3", {**proxy, hdr: urllib.parse.quote(good)}) == 101
    assert _status(server.url, "P3", {**proxy, hdr: urllib.parse.quote(_client_cert(server.services, "SN-X"))}) == 403
    assert _status(server.url, "P3", {**proxy, hdr: urllib.parse.quote(
        _client_cert(server.services, "SN-P3", "Other CPO"))}) == 403
    # a certificate from another CA with the right subject
    key = p256()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    fake = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=SN-P3,O=Test CPO"))
            .issuer_name(server.services.authority.ca_certificate(server.services.authority.ca("csms-sub")).subject)
            .public_key(key.public_key()).serial_number(9).not_valid_before(dt.datetime(2020, 1, 1))
            .not_valid_after(dt.datetime(2040, 1, 1)).sign(key, hashes.SHA256()))
    assert _status(server.url, "P3", {**proxy, hdr: urllib.parse.quote(
        fake.public_bytes(serialization.Encoding.PEM).decode())}) == 403
    assert _status(server.url, "P3", proxy) == 401  # no certificate
    assert _status(server.url, "P3", {**proxy, **basic("P3")}) == 401  # Basic does not replace the certificate
    # the same header from a peer not in PNC_OCPP_TRUSTED_PROXIES is ignored: no certificate -> 401
    # (uvicorn's own --forwarded-allow-ips, default 127.0.0.1, still turns X-Forwarded-Proto into scheme wss)
    server.runtime.settings.trusted_proxies = []
    assert _status(server.url, "P3", {**proxy, hdr: urllib.parse.quote(good)}) == 401


def test_profile_2_over_real_tls(services: Services, tmp_path: Path) -> None:
    """uvicorn terminates TLS with a CSMS server certificate from our csms-sub; the station trusts csms-root."""
    key = p256()
    issued = services.authority.issue_from_csr(make_csr(key, CN="localhost", O="Test CPO"), CertKind.CSMS_SERVER)
    (tmp_path / "server.pem").write_text(issued.chain_pem())
    (tmp_path / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    register(services, "P2", profile=2)
    app = create_app(services=services)
    app.state.ocpp = OcppRuntime(services, OcppSettings())
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                        ws="websockets-sansio", ssl_certfile=str(tmp_path / "server.pem"),
                                        ssl_keyfile=str(tmp_path / "server.key")))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        assert thread.is_alive()
        time.sleep(0.02)
    try:
        ctx = ssl.create_default_context()
        root = services.authority.ca_certificate(services.authority.ca("csms-root"))
        ctx.load_verify_locations(cadata=root.public_bytes(serialization.Encoding.PEM).decode())
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        stamp = run(_boot(f"wss://localhost:{port}/ocpp", "P2", basic("P2"), ctx))
        assert isinstance(stamp, str) and stamp.endswith("Z")
    finally:
        stop_server(srv, thread)


def test_outbox_backs_off_while_offline_and_survives_a_restart(services: Services) -> None:
    register(services, "OB1")
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    services.authority.clock = clock
    settings = OcppSettings(outbox_backoff_base=10, outbox_backoff_max=60, outbox_max_attempts=5)
    runtime = OcppRuntime(services, settings)
    db = services.db
    row = runtime.enqueue_command(["OB1"], "TriggerMessage", {"requestedMessage": "SignV2GCertificate"},
                                  actor="t")[0]
    assert row.id is not None
    delays = []
    for _ in range(5):
        assert runtime.tick() == set()  # offline: backed off, nobody to wake
        current = ocpp_repo.get_outbox(db, row.id)
        assert current is not None
        delays.append((current.next_attempt_at.replace(tzinfo=dt.UTC) - clock.now()).total_seconds())
        before = ocpp_repo.get_outbox(db, row.id)
        assert runtime.tick() == set() and ocpp_repo.get_outbox(db, row.id) == before  # not due yet
        clock.advance(dt.timedelta(seconds=61))
    assert delays[:4] == [10, 20, 40, 60]
    final = ocpp_repo.get_outbox(db, row.id)
    assert final is not None and final.status == OutboxStatus.FAILED and final.attempts == 5
    # a call on the wire when the process died is pending again after restart (never lost, never doubled)
    sent = ocpp_repo.enqueue(db, [OcppOutbox(station_id="OB1", action="TriggerMessage", status=OutboxStatus.SENT,
                                             payload=json.dumps({"requestedMessage": "SignV2GCertificate"}))])[0]
    assert ocpp_repo.requeue_orphans(db, clock.now()) == 1  # what start() does: its sender holds no connection
    assert sent.id is not None and ocpp_repo.claim_outbox(db, sent.id, clock.now())
    assert not ocpp_repo.claim_outbox(db, sent.id, clock.now())  # claimed once only
    runtime.executor.shutdown()
