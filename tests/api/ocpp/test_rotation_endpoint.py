"""A V2G root rotation driven by the service itself over its real OCPP endpoint (uvicorn, WebSocket), with the
`ocpp` package's ChargePoint as the stations (2.0.1, 2.1 and 1.6 with the PnC DataTransfer wrapper), one of them
offline when the roll-out starts.

Nothing here calls the job engine after the start: the lifecycle hooks in the endpoint (station connected,
CertificateSigned answered, answers to rotation calls) and the default outbox gateway move the job to the end —
new root installed and verified, every SECC certificate re-issued under the new chain, the old ones superseded and
revoked, the old root deleted from every station with the hash algorithm the station reported.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from api.lifecycle import LifecycleSettings, lifecycle_for
from pki.lifecycle.gateway import Hierarchy
from pki.lifecycle.rotation import RotationOptions
from pki.store import lifecycle_repo as lrepo
from pki.store import ocpp_repo
from pki.store.models import ItemState, JobStatus, StationCertState
from tests.api.ocpp.conftest import Server, register, run
from tests.api.ocpp.stations_sim import connect
from tests.helpers import openssl_verify

pytestmark = pytest.mark.interop

STATIONS = {"RT-1": "ocpp2.0.1", "RT-2": "ocpp2.1", "RT-3": "ocpp1.6", "RT-4": "ocpp2.0.1"}
OFFLINE = "RT-4"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


async def _first_secc(cp: Any, version: str) -> dict[str, Any]:
    """The station's SECC certificate under the current V2G root, through SignCertificate like in the field."""
    import json

    from ocpp.v16 import call as call16

    if version == "ocpp1.6":
        data = json.dumps({"csr": cp.csr("V2GCertificate"), "certificateType": "V2GCertificate"})
        await cp.call(call16.DataTransfer(vendor_id="org.openchargealliance.iso15118pnc",
                                          message_id="SignCertificate", data=data))
    else:
        await cp.call(cp.call_mod.SignCertificate(csr=cp.csr("V2GCertificate"), certificate_type="V2GCertificate"))
    return await asyncio.wait_for(cp.signed.get(), 10)  # type: ignore[no-any-return]


def test_v2g_root_rotation_runs_to_the_end_through_the_ocpp_endpoint(server: Server) -> None:
    services = server.services
    a = services.authority
    lc = lifecycle_for(services, settings=LifecycleSettings(grace_hours=0, watch=False))
    assert type(lc.gateway).__name__ == "OutboxGateway"  # the default: no configuration needed
    old_root = a.ca_certificate(a.ca("v2g-root"))
    for sid in STATIONS:
        register(server.services, sid, seccs=(f"DE*PNC*E{sid[-1]}2345*1",))
    stores: dict[str, Any] = {}

    async def fleet() -> None:
        stop = asyncio.Event()
        ready: set[str] = set()

        async def station(sid: str, proto: str, *, leave_after_first: bool = False) -> None:
            async with connect(server.url, sid, proto, secc=f"DE*PNC*E{sid[-1]}2345*1") as cp:
                if sid in stores:  # a reconnect: the station's trust store survived the outage
                    cp.roots = stores[sid].roots
                else:
                    cp.install("V2GRootCertificate", _pem(old_root))
                    first = await _first_secc(cp, proto)
                    assert x509.load_pem_x509_certificates(first["certificateChain"].encode())
                stores[sid] = cp
                ready.add(sid)
                if leave_after_first:
                    await asyncio.sleep(0.5)  # its CertificateSigned answer is recorded before it goes
                    return
                await stop.wait()

        # every station gets its first SECC certificate; RT-4 then goes offline
        await station(OFFLINE, STATIONS[OFFLINE], leave_after_first=True)
        online = [asyncio.create_task(station(sid, p)) for sid, p in STATIONS.items() if sid != OFFLINE]
        while len(ready) < len(STATIONS):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the CertificateSigned answers are recorded

        job = await asyncio.to_thread(lc.rotation.start, lc.engine, RotationOptions(Hierarchy.V2G, rate=0),
                                      "admin:test")
        assert job.id is not None
        await asyncio.to_thread(lc.engine.run, job.id)  # what `pnc root rotate` does once; the service does the rest
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            items = {i.station_id: i for i in lrepo.list_items(services.db, job.id)}
            online_done = all(items[s].state == ItemState.INSTALLED for s in STATIONS if s != OFFLINE)
            if online_done:
                break
            await asyncio.sleep(0.2)
        items = {i.station_id: i for i in lrepo.list_items(services.db, job.id)}
        assert items[OFFLINE].state == ItemState.PENDING, items[OFFLINE]  # offline: waits, is not failed
        assert all(items[s].state == ItemState.INSTALLED for s in STATIONS if s != OFFLINE), \
            {s: (i.state, i.step, i.reason) for s, i in items.items()}
        # RT-4 comes back: its reconnect alone resumes the roll-out for it
        back = asyncio.create_task(station(OFFLINE, STATIONS[OFFLINE]))
        while time.monotonic() < deadline + 40:
            if lc.engine.get(job.id).status == JobStatus.COMPLETED:
                break
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*online, back)
        stores["_job"] = job.id

    run(fleet(), timeout=120)
    job_id = stores.pop("_job")
    job = lc.engine.get(job_id)
    report = {i.station_id: (i.state, i.step, i.reason) for i in lrepo.list_items(services.db, job_id)}
    assert job.status == JobStatus.COMPLETED, (job.status, job.phase, job.message, report)
    new_root = a.ca_certificate(a.ca("v2g-root-g2"))
    for sid, cp in stores.items():
        roots = [c for _t, c in cp.roots.values()]
        assert old_root not in roots, f"{sid} still holds the old V2G root"
        assert any(r.public_key() == new_root.public_key() for r in roots), f"{sid} lacks the new root"
        # the newest SECC chain the station received verifies to the new root (independent peer: openssl)
        row = lrepo.station_certificates(services.db, sid)[-1]
        assert row.state == StationCertState.IN_USE
        rec = a.certificate(row.certificate_id)
        assert rec.der is not None
        leaf = x509.load_der_x509_certificate(rec.der)
        openssl_verify(leaf, [a.ca_certificate(a.ca(n)) for n in ("cpo-sub2-g2", "cpo-sub1-g2")], new_root)
        # the SECC certificate it had before is superseded and revoked (reason superseded)
        older = [r for r in lrepo.station_certificates(services.db, sid) if r.certificate_id != row.certificate_id]
        assert older and all(a.certificate(o.certificate_id).revocation_reason == "superseded" for o in older)
    # the 1.6 station was served through the PnC wrapper (V2G roots are not in the 1.6 security extension)
    wraps = {r.action: r.wrap for r in ocpp_repo.list_outbox(services.db, station_id="RT-3")}
    assert wraps["InstallCertificate"] == "pnc" and wraps["DeleteCertificate"] == "pnc"


# --- CSMS root rotation with link certificate, security profile 3 stations behind a TLS-terminating proxy ------

CSMS_STATIONS = {"RC-1": "ocpp2.0.1", "RC-2": "ocpp2.0.1", "RC-3": "ocpp1.6"}


@pytest.fixture
def ocpp_settings() -> Any:
    from api.ocpp.settings import OcppSettings

    return OcppSettings(outbox_tick=0.2, outbox_backoff_base=0.2, outbox_backoff_max=1.0, call_timeout=5.0,
                        max_frame_bytes=32_768, trusted_proxies=["127.0.0.1"])


def _sp3_headers(leaf_pem: str) -> dict[str, str]:
    """What nginx in front of pnc-pki passes on after it verified the station's TLS client certificate."""
    import urllib.parse

    return {"x-forwarded-proto": "https", "x-ssl-client-cert": urllib.parse.quote(leaf_pem)}


def test_csms_root_rotation_with_link_certificate_keeps_sp3_stations_connected(server: Server) -> None:
    from pki.profiles import CertKind
    from tests.helpers import make_csr, p256

    services = server.services
    a = services.authority
    lc = lifecycle_for(services, settings=LifecycleSettings(grace_hours=0, watch=False))
    old_root = a.ca_certificate(a.ca("csms-root"))
    certs: dict[str, str] = {}
    for sid in CSMS_STATIONS:
        register(services, sid, profile=3)
        issued = a.issue_from_csr(make_csr(p256(), CN=f"SN-{sid}", O="Test CPO"), CertKind.STATION_CLIENT,
                                  owner=sid)
        certs[sid] = issued.chain_pem().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    roots: dict[str, dict[str, Any]] = {sid: {} for sid in CSMS_STATIONS}
    connects: dict[str, int] = dict.fromkeys(CSMS_STATIONS, 0)
    stop = asyncio.Event()

    async def station(sid: str, proto: str) -> None:
        """Connects with its current client certificate; a new one (CertificateSigned) means reconnecting with it,
        as A02/A03 stations do — pnc-pki sees the new certificate in use and supersedes the old."""
        while not stop.is_set():
            async with connect(server.url, sid, proto, headers=_sp3_headers(certs[sid])) as cp:
                cp.roots = roots[sid]
                if not cp.roots:
                    cp.install("CSMSRootCertificate" if proto != "ocpp1.6" else "CentralSystemRootCertificate",
                               _pem(old_root))
                connects[sid] += 1
                get_signed = asyncio.ensure_future(cp.signed.get())
                stopped = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({get_signed, stopped}, return_when=asyncio.FIRST_COMPLETED)
                for f in (get_signed, stopped):
                    if f not in done:
                        f.cancel()
                if get_signed in done:
                    chain = get_signed.result()["certificateChain"]
                    # the new chain must verify to the new root through the link (what the station checks)
                    certs[sid] = chain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
                    await asyncio.sleep(0.3)  # its CertificateSigned answer went out

    async def fleet() -> int:
        tasks = [asyncio.create_task(station(sid, p)) for sid, p in CSMS_STATIONS.items()]
        while sum(connects.values()) < len(CSMS_STATIONS):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        job = await asyncio.to_thread(lc.rotation.start, lc.engine, RotationOptions(Hierarchy.CSMS, rate=0),
                                      "admin:test")
        assert job.id is not None
        await asyncio.to_thread(lc.engine.run, job.id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and lc.engine.get(job.id).status != JobStatus.COMPLETED:
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks)
        return job.id

    job_id = run(fleet(), timeout=120)
    assert isinstance(job_id, int)
    job = lc.engine.get(job_id)
    report = {i.station_id: (i.state, i.step, i.reason) for i in lrepo.list_items(services.db, job_id)}
    assert job.status == JobStatus.COMPLETED, (job.status, job.phase, job.message, report)
    new_root = a.ca_certificate(a.ca("csms-root-g2"))
    for sid in CSMS_STATIONS:
        held = [c for _t, c in roots[sid].values()]
        assert old_root not in held, f"{sid} still holds the old CSMS root"
        assert len(held) == 1 and held[0].issuer == old_root.subject  # the link certificate (M05, unknown ARCC)
        assert held[0].public_key() == new_root.public_key()
        leaf = x509.load_pem_x509_certificate(certs[sid].encode())
        openssl_verify(leaf, [a.ca_certificate(a.ca("csms-sub-g2"))], new_root)
        assert connects[sid] >= 2  # reconnected with the new certificate and was let in
        rows = lrepo.station_certificates(services.db, sid)
        assert rows[-1].state == StationCertState.IN_USE
        assert all(a.certificate(r.certificate_id).revocation_reason == "superseded" for r in rows[:-1])
    # the 1.6 station got the security extension's own messages, not 2.0.1 ones
    actions = [(r.action, r.wrap, r.payload) for r in ocpp_repo.list_outbox(services.db, station_id="RC-3")]
    assert ("ExtendedTriggerMessage", None) in [(x, w) for x, w, _p in actions]
    assert any(x == "InstallCertificate" and "CentralSystemRootCertificate" in p for x, _w, p in actions)
