"""REST: station registry, commands for a selection, and the CSMS-integration API with a webhook receiver."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pki.store import ocpp_repo
from tests.api.conftest import token_for
from tests.api.ocpp.conftest import Server, basic, run
from tests.api.ocpp.stations_sim import connect
from tests.api.ocpp.test_ocpp201 import verify_chain
from tests.helpers import make_csr, p256

pytestmark = pytest.mark.interop


def test_registry_rest_round_trip_and_login_with_the_generated_password(server: Server) -> None:
    op = {"authorization": f"Bearer {token_for(server.services, 'operator')}"}
    aud = {"authorization": f"Bearer {token_for(server.services, 'auditor')}"}
    with httpx.Client(base_url=server.http) as c:
        r = c.post("/api/v1/stations", json={"station_id": "R1", "serial_number": "SN-R1", "organization": "Test CPO",
                                             "secc_ids": ["DE*PNC*E12345*1"]}, headers=op)
        assert r.status_code == 201, r.text
        password = r.json()["password"]
        assert len(password) >= 16
        assert c.post("/api/v1/stations", json={"station_id": "R1", "serial_number": "x", "organization": "y"},
                      headers=op).status_code == 409
        assert c.post("/api/v1/stations", json={"station_id": "R2", "serial_number": "x", "organization": "y"},
                      headers=aud).status_code == 403
        assert c.post("/api/v1/stations", json={"station_id": "R3", "serial_number": "SN",
                                                "organization": "O", "secc_ids": ["not an id"]},
                      headers=op).status_code == 400
        stored = ocpp_repo.get_station(server.services.db, "R1")
        assert stored is not None and stored.password_hash and password not in stored.password_hash
        assert stored.password_hash.startswith("scrypt$")

        async def station() -> None:
            async with connect(server.url, "R1", headers=basic("R1", password)) as cp:
                from ocpp.v201 import call
                await cp.call(call.SecurityEventNotification(type="TamperDetectionActivated",
                                                             timestamp="2026-01-01T00:00:00Z"))
                shown = (await asyncio.to_thread(c.get, "/api/v1/stations/R1", headers=aud)).json()
                assert shown["connected"] is True and shown["ocpp_version"] == "2.0.1"

        run(station())
        events = c.get("/api/v1/stations/R1/events", params={"kind": "security"}, headers=aud).json()
        assert [e["type"] for e in events] == ["TamperDetectionActivated"]
        assert [s["station_id"] for s in c.get("/api/v1/stations", headers=aud).json()] == ["R1"]
        root = server.services.authority.ca_certificate(server.services.authority.ca("v2g-root"))
        cmd = {"action": "InstallCertificate", "payload": {"certificateType": "V2GRootCertificate",
                                                           "certificate": root.public_bytes(Encoding.PEM).decode()}}
        rows = c.post("/api/v1/stations/commands", json={**cmd, "organization": "Test CPO"}, headers=op).json()
        assert [(r["station_id"], r["status"]) for r in rows] == [("R1", "pending")]
        bad = c.post("/api/v1/stations/R1/commands", json={"action": "TriggerMessage",
                                                           "payload": {"requestedMessage": "NoSuchThing"}}, headers=op)
        assert bad.status_code == 400
        assert c.delete("/api/v1/stations/R1", headers=op).status_code == 204
        assert c.get("/api/v1/stations/R1", headers=aud).status_code == 404


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_csms_integration_forward_webhook_poll_and_ack(server: Server) -> None:
    httpd = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    server.runtime.settings.csms_webhook_url = f"http://127.0.0.1:{httpd.server_port}/hook"
    op = {"authorization": f"Bearer {token_for(server.services, 'operator')}"}
    csms = {"authorization": f"Bearer {token_for(server.services, 'csms')}"}
    try:
        with httpx.Client(base_url=server.http, timeout=10) as c:
            assert c.post("/api/v1/stations", json={"station_id": "C1", "serial_number": "SN-C1",
                                                    "organization": "Test CPO", "integration": "csms",
                                                    "security_profile": 1}, headers=op).status_code == 201
            csr = make_csr(p256(), CN="SN-C1", O="Test CPO").decode()
            msg = {"action": "SignCertificate", "payload": {"csr": csr, "certificateType": "ChargingStationCertificate"}}
            assert c.post("/api/v1/csms/stations/C1/messages", json=msg, headers=op).status_code == 403
            r = c.post("/api/v1/csms/stations/C1/messages", json=msg, headers=csms)
            assert r.status_code == 200 and r.json() == {"action": "SignCertificate",
                                                         "response": {"status": "Accepted"}}
            bad = c.post("/api/v1/csms/stations/C1/messages", json={"action": "SignCertificate",
                                                                    "payload": {"csr": 5}}, headers=csms)
            assert bad.status_code == 400 and bad.json()["code"] == "SchemaViolation"
            wrong = c.post("/api/v1/csms/stations/C1/messages", headers=csms, json={
                "action": "SignCertificate", "payload": {"csr": make_csr(p256(), CN="SN-X", O="Test CPO").decode()}})
            assert wrong.json()["response"]["status"] == "Rejected"
            deadline = time.monotonic() + 10
            while not _Receiver.received and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(_Receiver.received) == 1
            hook = _Receiver.received[0]
            assert hook["stationId"] == "C1" and hook["action"] == "CertificateSigned"
            verify_chain(server, hook["payload"]["certificateChain"], "csms-root")
            pending = c.get("/api/v1/csms/pending", params={"station_id": "C1"}, headers=csms).json()
            assert [p["id"] for p in pending] == [hook["id"]]
            acked = c.post(f"/api/v1/csms/pending/{hook['id']}/ack", json={"response": {"status": "Accepted"}},
                           headers=csms)
            assert acked.status_code == 200 and acked.json()["status"] == "answered"
            assert c.post(f"/api/v1/csms/pending/{hook['id']}/ack", json={"response": {"status": "Accepted"}},
                          headers=csms).status_code == 409
            assert c.get("/api/v1/csms/pending", headers=csms).json() == []
            leaf = x509.load_pem_x509_certificates(hook["payload"]["certificateChain"].encode())[0]
            assert leaf.subject.rfc4514_string() == "O=Test CPO,CN=SN-C1"
    finally:
        httpd.shutdown()
