"""OCPP 2.1 (V2G20Certificate, requestId, hashRootCertificate) and OCPP 1.6 (security extension + PnC DataTransfer)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from ocpp.v16 import call as call16
from ocpp.v21 import call as call21

from pki.store import ocpp_repo
from tests.api.ocpp.conftest import Server, register, run
from tests.api.ocpp.stations_sim import connect, hash_data
from tests.api.ocpp.test_ocpp201 import verify_chain
from tests.conftest import make_hierarchies
from tests.helpers import make_csr, p256, p521

pytestmark = pytest.mark.interop
SECC = "DE*PNC*E12345*1"


def test_v21_sign_v2g20_with_request_id_and_hash_root(server: Server) -> None:
    make_hierarchies(server.services.authority, iso20=True)  # adds the -20 hierarchy next to the dev one
    auth = server.services.authority
    root20 = auth.ca_certificate(auth.ca("v2g20-root"))
    register(server.services, "S21")

    async def station() -> tuple[Any, dict[str, Any], Any, Any]:
        async with connect(server.url, "S21", "ocpp2.1") as cp:
            ok = await cp.call(call21.SignCertificate(
                csr=make_csr(p521(), CN=SECC, O="Test CPO", C="DE", DC="CPO").decode(),
                certificate_type="V2G20Certificate", request_id=42, hash_root_certificate=hash_data(root20)))
            signed = await asyncio.wait_for(cp.signed.get(), 10)
            other_root = auth.ca_certificate(auth.ca("mo-root"))
            wrong_root = await cp.call(call21.SignCertificate(
                csr=make_csr(p521(), CN=SECC, O="Test CPO", DC="CPO").decode(), certificate_type="V2G20Certificate",
                request_id=43, hash_root_certificate=hash_data(other_root)))
            boot = await cp.call(call21.BootNotification(
                charging_station={"model": "M", "vendor_name": "V", "serial_number": "SN-S21"}, reason="PowerUp"))
            return ok, signed, wrong_root, boot

    result = run(station())
    assert isinstance(result, tuple)
    ok, signed, wrong_root, boot = result
    assert ok.status == "Accepted" and boot.status == "Accepted"
    assert signed["request_id"] == 42 and signed["certificate_type"] == "V2G20Certificate"
    certs = verify_chain(server, signed["certificateChain"], "v2g20-root")
    assert certs[0].signature_hash_algorithm is not None and certs[0].signature_hash_algorithm.name == "sha512"
    assert wrong_root.status == "Rejected" and wrong_root.status_info["reason_code"] == "UnknownRoot"


def test_v21_trigger_sign_v2g20(server: Server) -> None:
    make_hierarchies(server.services.authority, iso20=True)
    register(server.services, "S22")

    async def station() -> dict[str, Any]:
        async with connect(server.url, "S22", "ocpp2.1") as cp:
            cp.csr = lambda t: make_csr(p521(), CN=SECC, O="Test CPO", DC="CPO").decode()  # the -20 key
            await asyncio.to_thread(server.runtime.enqueue_command, ["S22"], "TriggerMessage",
                                    {"requestedMessage": "SignV2G20Certificate"}, actor="t")
            assert (await asyncio.wait_for(cp.sign_answers.get(), 10)).status == "Accepted"
            return await asyncio.wait_for(cp.signed.get(), 10)  # type: ignore[no-any-return]

    signed = run(station())
    assert isinstance(signed, dict)
    verify_chain(server, signed["certificateChain"], "v2g20-root")


def test_v16_security_extension_sign_trigger_install_get_delete(server: Server) -> None:
    register(server.services, "S16")
    auth = server.services.authority
    csms_root = auth.ca_certificate(auth.ca("csms-root"))
    runtime = server.runtime
    db = server.services.db

    async def station() -> None:
        async with connect(server.url, "S16", "ocpp1.6", report_alg="SHA512") as cp:
            boot = await cp.call(call16.BootNotification(charge_point_vendor="ACME", charge_point_model="M",
                                                         charge_box_serial_number="SN-S16"))
            assert boot.status == "Accepted"
            await cp.call(call16.SecurityEventNotification(type="StartupOfTheDevice",
                                                           timestamp="2026-01-01T00:00:00Z", tech_info="boot"))
            r = await cp.call(call16.SignCertificate(csr=make_csr(p256(), CN="SN-S16", O="Test CPO").decode()))
            assert r.status == "Accepted"
            signed = await asyncio.wait_for(cp.signed.get(), 10)
            verify_chain(server, signed["certificateChain"], "csms-root")
            bad = await cp.call(call16.SignCertificate(csr=make_csr(p256(), CN="SN-OTHER", O="Test CPO").decode()))
            assert bad.status == "Rejected"
            # renewal: ExtendedTriggerMessage → SignCertificate → CertificateSigned
            await asyncio.to_thread(runtime.enqueue_command, ["S16"], "ExtendedTriggerMessage",
                                    {"requestedMessage": "SignChargePointCertificate"}, actor="t")
            assert (await asyncio.wait_for(cp.sign_answers.get(), 10)).status == "Accepted"
            verify_chain(server, (await asyncio.wait_for(cp.signed.get(), 10))["certificateChain"], "csms-root")
            pem = csms_root.public_bytes(Encoding.PEM).decode()
            await asyncio.to_thread(runtime.enqueue_command, ["S16"], "InstallCertificate",
                                    {"certificateType": "CentralSystemRootCertificate", "certificate": pem}, actor="t")
            await asyncio.to_thread(runtime.enqueue_command, ["S16"], "GetInstalledCertificateIds",
                                    {"certificateType": "CentralSystemRootCertificate"}, actor="t")
            await asyncio.to_thread(runtime.enqueue_command, ["S16"], "DeleteCertificate",
                                    {"certificateHashData": {k: v for k, v in hash_data(csms_root, "SHA512").items()}},
                                    actor="t")
            while len(await asyncio.to_thread(ocpp_repo.list_outbox, db, station_id="S16", status="answered")) < 6:
                await asyncio.sleep(0.05)
            assert cp.roots == {}

    run(station(), timeout=40)
    rows = ocpp_repo.list_outbox(db, station_id="S16")
    get_ids = next(r for r in rows if r.action == "GetInstalledCertificateIds")
    assert json.loads(get_ids.response or "{}")["certificateHashData"][0]["hashAlgorithm"] == "SHA512"
    assert ocpp_repo.list_inventory(db, "S16") == []  # deleted again
    assert [e.type for e in ocpp_repo.list_events(db, "S16", kind="security")] == ["StartupOfTheDevice"]


def test_v16_pnc_data_transfer_both_directions(server: Server) -> None:
    register(server.services, "P16")
    auth = server.services.authority
    v2g_root = auth.ca_certificate(auth.ca("v2g-root")).public_bytes(Encoding.PEM).decode()

    async def station() -> tuple[Any, dict[str, Any], Any, Any]:
        async with connect(server.url, "P16", "ocpp1.6") as cp:
            csr = make_csr(p256(), CN=SECC, O="Test CPO", C="DE", DC="CPO").decode()
            r = await cp.call(call16.DataTransfer(vendor_id="org.openchargealliance.iso15118pnc",
                                                  message_id="SignCertificate",
                                                  data=json.dumps({"csr": csr, "certificateType": "V2GCertificate"})))
            signed = await asyncio.wait_for(cp.signed.get(), 10)
            await asyncio.to_thread(server.runtime.enqueue_command, ["P16"], "InstallCertificate",
                                    {"certificateType": "V2GRootCertificate", "certificate": v2g_root},
                                    actor="t", pnc=True)
            while not cp.roots:
                await asyncio.sleep(0.05)
            bad = await cp.call(call16.DataTransfer(vendor_id="org.openchargealliance.iso15118pnc",
                                                    message_id="SignCertificate", data=json.dumps({"csr": 5})))
            unknown = await cp.call(call16.DataTransfer(vendor_id="com.example", message_id="X", data="{}"))
            return r, signed, bad, unknown

    result = run(station())
    assert isinstance(result, tuple)
    r, signed, bad, unknown = result
    assert r.status == "Accepted" and json.loads(r.data) == {"status": "Accepted"}
    assert signed["certificateType"] == "V2GCertificate"
    certs = verify_chain(server, signed["certificateChain"], "v2g-root")
    assert isinstance(certs[0], x509.Certificate)
    assert bad.status == "Rejected" and unknown.status == "UnknownVendorId"
    install = next(r for r in ocpp_repo.list_outbox(server.services.db, station_id="P16")
                   if r.action == "InstallCertificate")
    assert install.wrap == "pnc" and json.loads(install.response or "{}") == {"status": "Accepted"}


@pytest.mark.parametrize(("subprotocol", "format_code", "type_code"), [
    ("ocpp2.1", "FormatViolation", "MessageTypeNotSupported"),
    ("ocpp1.6", "FormationViolation", "PropertyConstraintViolation"),
])
def test_hostile_frames_on_21_and_16(server: Server, subprotocol: str, format_code: str, type_code: str) -> None:
    import websockets

    from tests.api.ocpp.conftest import basic
    from tests.api.ocpp.test_ocpp201 import _raw_exchange

    register(server.services, "H1")

    async def station() -> None:
        async with websockets.connect(f"{server.url}/H1", subprotocols=[subprotocol],  # type: ignore[list-item]
                                      additional_headers=basic("H1")) as ws:
            assert ws.subprotocol == subprotocol
            assert (await _raw_exchange(ws, "[2, oops"))[:3] == [4, "-1", format_code]
            assert (await _raw_exchange(ws, '[9, "a", "Heartbeat", {}]'))[:3] == [4, "a", type_code]
            assert (await _raw_exchange(ws, '[2, "b", "NoSuchAction", {}]'))[:3] == [4, "b", "NotImplemented"]
            err = await _raw_exchange(ws, json.dumps([2, "c", "SignCertificate", {"csr": "x" * 6000}]))
            assert err[:2] == [4, "c"]
            err = await _raw_exchange(ws, json.dumps([2, "d", "SignCertificate", {"csr": ["not", "a", "string"]}]))
            assert err[:3] == [4, "d", "TypeConstraintViolation"]
            ok = await _raw_exchange(ws, '[2, "e", "Heartbeat", {}]')
            assert ok[:2] == [3, "e"]

    run(station())


@pytest.mark.parametrize(("subprotocol", "occurrence", "format_code"), [
    ("ocpp2.0.1", "OccurrenceConstraintViolation", "FormatViolation"),
    ("ocpp2.1", "OccurrenceConstraintViolation", "FormatViolation"),
    ("ocpp1.6", "OccurenceConstraintViolation", "FormationViolation"),  # OCPP-J 1.6 spells both so
])
def test_schema_failures_get_the_callerror_code_ocpp_j_prescribes(server: Server, subprotocol: str, occurrence: str,
                                                                  format_code: str) -> None:
    """Missing field → occurrence, bad enum value → property constraint, unknown field → format, per version."""
    import websockets

    from tests.api.ocpp.conftest import basic
    from tests.api.ocpp.test_ocpp201 import _raw_exchange

    register(server.services, "H2")
    missing = (("StatusNotification", {"connectorId": 1, "errorCode": "NoError"}) if subprotocol == "ocpp1.6"
               else ("SignCertificate", {}))
    bad_enum = (("StatusNotification", {"connectorId": 1, "errorCode": "NoSuchError", "status": "Available"})
                if subprotocol == "ocpp1.6" else ("SignCertificate", {"csr": "x", "certificateType": "NoSuchType"}))

    async def station() -> None:
        async with websockets.connect(f"{server.url}/H2", subprotocols=[subprotocol],  # type: ignore[list-item]
                                      additional_headers=basic("H2")) as ws:
            err = await _raw_exchange(ws, json.dumps([2, "o1", *missing]))
            assert err[:3] == [4, "o1", occurrence], err
            err = await _raw_exchange(ws, json.dumps([2, "o2", *bad_enum]))
            assert err[:3] == [4, "o2", "PropertyConstraintViolation"], err
            err = await _raw_exchange(ws, json.dumps([2, "o3", "Heartbeat", {"unexpected": True}]))
            assert err[:3] == [4, "o3", format_code], err
            ok = await _raw_exchange(ws, '[2, "o4", "Heartbeat", {}]')
            assert ok[:2] == [3, "o4"]  # the connection stays usable

    run(station())
