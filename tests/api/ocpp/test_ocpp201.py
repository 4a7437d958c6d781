"""OCPP 2.0.1 end to end: the `ocpp` package's ChargePoint as the station, pnc-pki on a real uvicorn socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from cryptography import x509
from cryptography.x509.oid import NameOID
from ocpp.v201 import call

from api.ocpp.runtime import OcppRuntime
from pki.store import ocpp_repo
from pki.store.ocpp_models import OutboxStatus
from tests.api.ocpp.conftest import Server, basic, register, run
from tests.api.ocpp.stations_sim import connect, hash_data
from tests.helpers import make_csr, openssl_verify, p256

pytestmark = pytest.mark.interop


def verify_chain(server: Server, pem: str, root_ca: str) -> list[x509.Certificate]:
    certs = x509.load_pem_x509_certificates(pem.encode())
    root = server.services.authority.ca_certificate(server.services.authority.ca(root_ca))
    assert all(c.subject != c.issuer for c in certs), "CertificateSigned must not carry the root"
    openssl_verify(certs[0], certs[1:], root)
    return certs


async def boot(cp: Any, serial: str) -> Any:
    return await cp.call(call.BootNotification(
        charging_station={"model": "M1", "vendor_name": "ACME", "serial_number": serial}, reason="PowerUp"))


def test_boot_heartbeat_status_and_security_events_are_stored(server: Server) -> None:
    register(server.services, "CS1")

    async def station() -> None:
        async with connect(server.url, "CS1") as cp:
            r = await boot(cp, "SN-CS1")
            assert r.status == "Accepted" and r.interval == 300
            assert (await cp.call(call.Heartbeat())).current_time.endswith("Z")
            await cp.call(call.StatusNotification(timestamp="2026-01-01T00:00:00Z", connector_status="Available",
                                                  evse_id=1, connector_id=1))
            await cp.call(call.SecurityEventNotification(type="StartupOfTheDevice", timestamp="2026-01-01T00:00:00Z",
                                                         tech_info="cold boot"))
            await cp.call(call.NotifyEvent(generated_at="2026-01-01T00:00:00Z", seq_no=0, event_data=[{
                "eventId": 1, "timestamp": "2026-01-01T00:00:00Z", "trigger": "Alerting", "actualValue": "x",
                "eventNotificationType": "HardWiredNotification", "component": {"name": "C"},
                "variable": {"name": "V"}}]))
            # a station claiming another serial in its boot is confined to its registered identity
            assert (await boot(cp, "SN-OTHER")).status == "Rejected"

    run(station())
    events = ocpp_repo.list_events(server.services.db, "CS1", kind="security")
    assert [e.type for e in events] == ["StartupOfTheDevice"]
    assert json.loads(events[0].payload)["techInfo"] == "cold boot"
    assert ocpp_repo.list_events(server.services.db, "CS1", kind="status")[0].type == "Available"
    assert ocpp_repo.get_station(server.services.db, "CS1").ocpp_version == "2.0.1"  # type: ignore[union-attr]


@pytest.mark.parametrize(("cert_type", "root"), [("ChargingStationCertificate", "csms-root"),
                                                  ("V2GCertificate", "v2g-root"), (None, "v2g-root")])
def test_sign_certificate_then_certificate_signed_chain_verifies(server: Server, cert_type: str | None,
                                                                 root: str) -> None:
    register(server.services, "CS2")

    async def station() -> dict[str, Any]:
        async with connect(server.url, "CS2") as cp:
            r = await cp.call(call.SignCertificate(csr=cp.csr(cert_type), certificate_type=cert_type))
            assert r.status == "Accepted"
            return await asyncio.wait_for(cp.signed.get(), 10)  # type: ignore[no-any-return]

    signed = run(station())
    assert isinstance(signed, dict)
    certs = verify_chain(server, signed["certificateChain"], root)
    assert len(certs) == (2 if root == "csms-root" else 3)  # leaf, Sub-CA 2, Sub-CA 1 (OCPP: one issuing CA)
    assert signed.get("certificate_type") == cert_type  # echoed (A02.FR.14), absent when the CSR had none
    cn = certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == ("SN-CS2" if cert_type == "ChargingStationCertificate" else "DE*PNC*E12345*1")


def test_station_cannot_get_a_certificate_with_another_stations_identity(server: Server) -> None:
    register(server.services, "CSA", serial="SN-A")
    register(server.services, "CSB", serial="SN-B", seccs=("DE*PNC*E99999*1",))

    async def station() -> list[Any]:
        async with connect(server.url, "CSA", serial="SN-A") as cp:
            answers = [
                await cp.call(call.SignCertificate(csr=make_csr(p256(), CN="SN-B", O="Test CPO").decode(),
                                                   certificate_type="ChargingStationCertificate")),
                await cp.call(call.SignCertificate(csr=make_csr(p256(), CN="SN-A", O="Other CPO").decode(),
                                                   certificate_type="ChargingStationCertificate")),
                await cp.call(call.SignCertificate(csr=make_csr(p256(), CN="DE*PNC*E99999*1", O="Test CPO",
                                                                DC="CPO").decode(),
                                                   certificate_type="V2GCertificate")),
            ]
            await asyncio.sleep(0.3)  # give a (wrong) CertificateSigned the chance to arrive
            assert cp.signed.empty()
            return answers

    answers = run(station())
    assert isinstance(answers, list)
    for a in answers:
        assert a.status == "Rejected"
        assert a.status_info["reason_code"] == "InvalidSubject"
    assert ocpp_repo.list_outbox(server.services.db, station_id="CSA") == []


def test_renewal_via_trigger_message_through_the_outbox(server: Server) -> None:
    register(server.services, "CS3")
    runtime: OcppRuntime = server.runtime

    async def station() -> dict[str, Any]:
        async with connect(server.url, "CS3") as cp:
            await boot(cp, "SN-CS3")
            await asyncio.to_thread(runtime.enqueue_command, ["CS3"], "TriggerMessage",
                                    {"requestedMessage": "SignChargingStationCertificate"}, actor="test")
            answer = await asyncio.wait_for(cp.sign_answers.get(), 10)
            assert answer.status == "Accepted"
            return await asyncio.wait_for(cp.signed.get(), 10)  # type: ignore[no-any-return]

    signed = run(station())
    assert isinstance(signed, dict)
    verify_chain(server, signed["certificateChain"], "csms-root")
    rows = ocpp_repo.list_outbox(server.services.db, station_id="CS3")
    trigger = next(r for r in rows if r.action == "TriggerMessage")
    assert trigger.status == OutboxStatus.ANSWERED and json.loads(trigger.response or "{}") == {"status": "Accepted"}
    assert {r.action for r in rows} == {"TriggerMessage", "CertificateSigned"}


def test_install_get_delete_round_trip_while_the_station_reconnects(server: Server) -> None:
    register(server.services, "CS4")
    runtime = server.runtime
    db = server.services.db
    auth = server.services.authority
    mo_root = auth.ca_certificate(auth.ca("mo-root"))
    v2g_root = auth.ca_certificate(auth.ca("v2g-root"))
    pem = lambda c: c.public_bytes(__import__("cryptography.hazmat.primitives.serialization",  # noqa: E731
                                              fromlist=["Encoding"]).Encoding.PEM).decode()

    # queued while the station is offline: durable rows that back off
    runtime.enqueue_command(["CS4"], "InstallCertificate",
                            {"certificateType": "MORootCertificate", "certificate": pem(mo_root)}, actor="test")
    runtime.enqueue_command(["CS4"], "InstallCertificate",
                            {"certificateType": "V2GRootCertificate", "certificate": pem(v2g_root)}, actor="test")

    def wait_rows(predicate: Any) -> None:
        async def poll() -> None:
            while not predicate(ocpp_repo.list_outbox(db, station_id="CS4")):
                await asyncio.sleep(0.05)
        run(poll(), timeout=10)

    wait_rows(lambda rows: all(r.attempts >= 1 and r.status == "pending" for r in rows))  # offline back-off

    async def first_visit() -> None:
        async with connect(server.url, "CS4") as cp:
            while len(cp.roots) < 2:
                await asyncio.sleep(0.05)

    run(first_visit())
    runtime.enqueue_command(["CS4"], "GetInstalledCertificateIds", {}, actor="test")  # station offline again

    async def second_visit() -> None:
        async with connect(server.url, "CS4", report_alg="SHA384") as cp:
            cp.roots.update({})  # the station kept its store across the reconnect in reality; emulate it
            cp.roots.update({format(mo_root.serial_number, "x"): ("MORootCertificate", mo_root),
                             format(v2g_root.serial_number, "x"): ("V2GRootCertificate", v2g_root)})
            while not any(r.action == "GetInstalledCertificateIds" and r.status == "answered"
                          for r in await asyncio.to_thread(ocpp_repo.list_outbox, db, station_id="CS4")):
                await asyncio.sleep(0.05)
            inventory = await asyncio.to_thread(ocpp_repo.list_inventory, db, "CS4")
            assert {i.hash_algorithm for i in inventory} == {"SHA384"}
            mo = next(i for i in inventory if i.certificate_type == "MORootCertificate")
            # delete with the hash algorithm the station reported (M04.FR.07)
            h = {"hashAlgorithm": mo.hash_algorithm, "issuerNameHash": mo.issuer_name_hash,
                 "issuerKeyHash": mo.issuer_key_hash, "serialNumber": mo.serial_number}
            assert h == hash_data(mo_root, "SHA384")
            await asyncio.to_thread(runtime.enqueue_command, ["CS4"], "DeleteCertificate",
                                    {"certificateHashData": h}, actor="test")
            while len(cp.roots) != 1:
                await asyncio.sleep(0.05)
            # the station's handler has run; its answer reaches the outbox a moment later: stay connected until then
            while not any(r.action == "DeleteCertificate" and r.status == "answered"
                          for r in await asyncio.to_thread(ocpp_repo.list_outbox, db, station_id="CS4")):
                await asyncio.sleep(0.05)

    run(second_visit())
    rows = ocpp_repo.list_outbox(db, station_id="CS4")
    assert [r.status for r in rows] == ["answered"] * 4
    assert [json.loads(r.response or "{}")["status"] for r in rows] == ["Accepted"] * 4
    assert [i.certificate_type for i in ocpp_repo.list_inventory(db, "CS4")] == ["V2GRootCertificate"]


def test_install_certificate_refuses_non_roots(server: Server) -> None:
    register(server.services, "CS5")
    auth = server.services.authority
    from cryptography.hazmat.primitives.serialization import Encoding

    sub = auth.ca_certificate(auth.ca("mo-sub1")).public_bytes(Encoding.PEM).decode()
    from pki.errors import PolicyViolation

    with pytest.raises(PolicyViolation):
        server.runtime.enqueue_command(["CS5"], "InstallCertificate",
                                       {"certificateType": "MORootCertificate", "certificate": sub}, actor="t")


async def _raw_exchange(ws: Any, frame: str) -> list[Any]:
    await ws.send(frame)
    return json.loads(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[no-any-return]


def test_hostile_frames_get_callerrors_and_the_socket_survives(server: Server) -> None:
    register(server.services, "CS6")

    async def station() -> None:
        async with websockets.connect(f"{server.url}/CS6", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                      additional_headers=basic("CS6")) as ws:
            assert (await _raw_exchange(ws, "{not json"))[:3] == [4, "-1", "FormatViolation"]
            assert (await _raw_exchange(ws, '{"a": 1}'))[:3] == [4, "-1", "ProtocolError"]
            assert (await _raw_exchange(ws, '[7, "m1", "Heartbeat", {}]'))[:3] == [4, "m1", "MessageTypeNotSupported"]
            assert (await _raw_exchange(ws, '[2, "m2", "FlyToTheMoon", {}]'))[:3] == [4, "m2", "NotImplemented"]
            assert (await _raw_exchange(ws, '[2, "m3", "Reset", {"type": "Immediate"}]'))[:3] == \
                [4, "m3", "NotSupported"]
            huge = make_csr(p256(), CN="SN-CS6", O="Test CPO").decode() + "A" * 6000
            err = await _raw_exchange(ws, json.dumps([2, "m4", "SignCertificate", {"csr": huge}]))
            assert err[:2] == [4, "m4"] and err[2] in ("TypeConstraintViolation", "PropertyConstraintViolation",
                                                      "FormatViolation")
            err = await _raw_exchange(ws, json.dumps([2, "m5", "SignCertificate", {"csr": 42}]))
            assert err[:3] == [4, "m5", "TypeConstraintViolation"]
            err = await _raw_exchange(ws, json.dumps([2, "m6", "Heartbeat", {"unexpected": True}]))
            assert err[:2] == [4, "m6"]
            err = await _raw_exchange(ws, json.dumps([2, "m7", "Heartbeat", {"x": "y" * 40_000}]))
            assert err[:3] == [4, "-1", "FormatViolation"]  # frame size limit
            # the schemas' "format": "date-time" (RFC 3339) is checked too: not a time, or no time zone
            for n, stamp in enumerate(("yesterday", "2026-01-01 00:00:00", "2026-13-01T00:00:00Z")):
                err = await _raw_exchange(ws, json.dumps([2, f"t{n}", "SecurityEventNotification", {
                    "type": "StartupOfTheDevice", "timestamp": stamp}]))
                assert err[:3] == [4, f"t{n}", "FormatViolation"], (stamp, err)
            ok = await _raw_exchange(ws, json.dumps([2, "t9", "SecurityEventNotification", {
                "type": "StartupOfTheDevice", "timestamp": "2026-01-01T01:00:00.5+01:00"}]))
            assert ok[:2] == [3, "t9"]
            ok = await _raw_exchange(ws, '[2, "m8", "Heartbeat", {}]')
            assert ok[0] == 3 and ok[1] == "m8" and "currentTime" in ok[2]

    run(station())


@pytest.mark.parametrize(("station_id", "headers", "status"), [
    ("CS7", basic("CS7", "wrong-password-123456"), 401),
    ("NOPE", basic("NOPE"), 401),
    ("CS7", {}, 401),
    ("CS7", basic("CS8"), 403),  # Basic user is another identity
])
def test_handshake_refuses_unknown_or_wrongly_authenticated_stations(server: Server, station_id: str,
                                                                     headers: dict[str, str], status: int) -> None:
    register(server.services, "CS7")
    register(server.services, "CS8")

    async def station() -> None:
        with pytest.raises(websockets.InvalidStatus) as exc:
            async with websockets.connect(f"{server.url}/{station_id}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                          additional_headers=headers):
                pass
        assert exc.value.response.status_code == status

    run(station())


@pytest.mark.parametrize("offered", [["ocpp1.5"], ["ocpp2.0"], []])
def test_handshake_without_a_supported_subprotocol_is_refused(server: Server, offered: list[str]) -> None:
    """OCPP-J: the CSMS must not accept a connection it cannot speak; 400 before any authentication."""
    register(server.services, "CS7b")

    async def station() -> None:
        with pytest.raises(websockets.InvalidStatus) as exc:
            async with websockets.connect(f"{server.url}/CS7b", subprotocols=offered or None,  # type: ignore[arg-type]
                                          additional_headers=basic("CS7b")):
                pass
        assert exc.value.response.status_code == 400
        assert b"no supported OCPP subprotocol" in exc.value.response.body

    run(station())


def test_profile_2_requires_tls(server: Server) -> None:
    register(server.services, "CS9", profile=2)

    async def station() -> None:
        with pytest.raises(websockets.InvalidStatus) as exc:
            async with websockets.connect(f"{server.url}/CS9", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                          additional_headers=basic("CS9")):
                pass
        assert exc.value.response.status_code == 403

    run(station())


def test_a_failing_handler_costs_one_callerror_not_the_connection(server: Server,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    register(server.services, "CS10")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(server.runtime.core, "on_StatusNotification", broken)

    async def station() -> None:
        async with websockets.connect(f"{server.url}/CS10", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                      additional_headers=basic("CS10")) as ws:
            frame = [2, "s1", "StatusNotification", {"timestamp": "2026-01-01T00:00:00Z",
                                                     "connectorStatus": "Available", "evseId": 1, "connectorId": 1}]
            err = await _raw_exchange(ws, json.dumps(frame))
            assert err[:3] == [4, "s1", "InternalError"] and "database" not in json.dumps(err)
            assert (await _raw_exchange(ws, '[2, "s2", "Heartbeat", {}]'))[:2] == [3, "s2"]

    run(station())


@pytest.mark.parametrize(("trigger", "root"), [("SignV2GCertificate", "v2g-root"),
                                               ("SignCombinedCertificate", "v2g-root")])
def test_trigger_v2g_and_combined_renewal(server: Server, trigger: str, root: str) -> None:
    """TriggerMessage SignV2GCertificate / SignCombinedCertificate: the station answers with a SignCertificate
    (V2GCertificate, or no type for the combined certificate) and gets a chain for its SECC identity."""
    register(server.services, "CS5")

    async def station() -> tuple[dict[str, Any], list[str]]:
        async with connect(server.url, "CS5") as cp:
            await asyncio.to_thread(server.runtime.enqueue_command, ["CS5"], "TriggerMessage",
                                    {"requestedMessage": trigger}, actor="test")
            answer = await asyncio.wait_for(cp.sign_answers.get(), 10)
            assert answer.status == "Accepted"
            return await asyncio.wait_for(cp.signed.get(), 10), cp.triggered

    result = run(station())
    assert isinstance(result, tuple)
    signed, triggered = result
    assert triggered == [trigger]
    certs = verify_chain(server, signed["certificateChain"], root)
    assert certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "DE*PNC*E12345*1"
