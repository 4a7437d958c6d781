"""Real OCPP 2.0.1 over the `ocpp` package: a CSMS-side ChargePoint per station talking to a station-side
ChargePoint through an in-memory WebSocket stand-in. Every message is schema-validated by the library on both ends.

The station side keeps its trust store in a :class:`SimulatedFleet` (same behaviour rules as the simulator), but
all traffic — InstallCertificate, GetInstalledCertificateIds, TriggerMessage, SignCertificate, CertificateSigned,
DeleteCertificate — goes through ``ocpp.v201.ChargePoint.call`` and ``@on``/``@after`` handlers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result

from pki.authority import Authority
from pki.lifecycle.gateway import CallResult, CallState, StationInventory
from pki.lifecycle.simulator import SimulatedFleet, _chain_ok
from pki.lifecycle.stations import StationLifecycle
from pki.profiles import CertKind, Generation


class _Pipe:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.peer: _Pipe | None = None

    async def send(self, message: str) -> None:
        assert self.peer is not None
        await self.peer.inbox.put(message)

    async def recv(self) -> str:
        return await self.inbox.get()


def _camel(obj: Any) -> dict[str, Any]:
    return dict(snake_to_camel_case(remove_nones(serialize_as_dict(obj))))


class StationSide(ChargePoint):  # type: ignore[misc]
    def __init__(self, sid: str, conn: _Pipe, fleet: SimulatedFleet, tracker: _Tracker) -> None:
        super().__init__(sid, conn)
        self.fleet = fleet
        self.tracker = tracker
        self.key: ec.EllipticCurvePrivateKey | None = None

    @property
    def st(self) -> Any:
        return self.fleet.fleet[self.id]

    @on("InstallCertificate")
    def on_install(self, **kw: Any) -> call_result.InstallCertificate:
        r = self.fleet._on_InstallCertificate(self.st, snake_to_camel_case(kw))
        return call_result.InstallCertificate(**camel_to_snake_case(r))

    @on("GetInstalledCertificateIds")
    def on_get_ids(self, **kw: Any) -> call_result.GetInstalledCertificateIds:
        r = self.fleet._on_GetInstalledCertificateIds(self.st, snake_to_camel_case(kw))
        return call_result.GetInstalledCertificateIds(**camel_to_snake_case(r))

    @on("DeleteCertificate")
    def on_delete(self, **kw: Any) -> call_result.DeleteCertificate:
        r = self.fleet._on_DeleteCertificate(self.st, snake_to_camel_case(kw))
        return call_result.DeleteCertificate(**camel_to_snake_case(r))

    @on("TriggerMessage")
    def on_trigger(self, requested_message: str, **_: Any) -> call_result.TriggerMessage:
        ok = requested_message in ("SignChargingStationCertificate", "SignV2GCertificate")
        if ok:
            self.tracker.begin()
        return call_result.TriggerMessage(status="Accepted" if ok else "NotImplemented")

    @after("TriggerMessage")
    async def after_trigger(self, requested_message: str, **_: Any) -> None:
        if requested_message not in ("SignChargingStationCertificate", "SignV2GCertificate"):
            return
        v2g = requested_message == "SignV2GCertificate"
        self.key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, self.st.secc_id if v2g else self.id),
                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.st.organization),
                 x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]
        if v2g:
            attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPO"))
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(self.key, hashes.SHA256())
        res = await self.call(call.SignCertificate(
            csr=csr.public_bytes(serialization.Encoding.PEM).decode(),
            certificate_type="V2GCertificate" if v2g else "ChargingStationCertificate"))
        if res is None or res.status != "Accepted":
            self.tracker.end()

    @on("CertificateSigned")
    def on_signed(self, certificate_chain: str, certificate_type: str | None = None,
                  **_: Any) -> call_result.CertificateSigned:
        chain = x509.load_pem_x509_certificates(certificate_chain.encode())
        v2g = certificate_type == "V2GCertificate"
        roots = self.fleet.root_certificates(self.id, "V2GRootCertificate" if v2g else "CSMSRootCertificate")
        ok = self.key is not None and chain[0].public_key() == self.key.public_key() and _chain_ok(chain, roots)
        if ok:
            self.st.certificates[certificate_type or "ChargingStationCertificate"] = certificate_chain
        return call_result.CertificateSigned(status="Accepted" if ok else "Rejected")


class CsmsSide(ChargePoint):  # type: ignore[misc]
    """What the OCPP endpoint does for A02: sign the CSR, send CertificateSigned, record the outcome."""

    def __init__(self, sid: str, conn: _Pipe, authority: Authority, lifecycle: StationLifecycle,
                 tracker: _Tracker) -> None:
        super().__init__(sid, conn)
        self.authority = authority
        self.lifecycle = lifecycle
        self.tracker = tracker

    @on("SignCertificate")
    def on_sign(self, csr: str, **_: Any) -> call_result.SignCertificate:
        return call_result.SignCertificate(status="Accepted")  # A02.FR.11: accept, then sign (FR.04)

    @after("SignCertificate")
    async def after_sign(self, csr: str, certificate_type: str | None = None, **_: Any) -> None:
        try:
            v2g = certificate_type == "V2GCertificate"

            def _issue() -> tuple[str, int, x509.Certificate]:
                if v2g:
                    issued = self.authority.issue_from_csr(csr, CertKind.SECC_LEAF, generation=Generation.ISO15118_2,
                                                           owner=self.id, actor=f"station:{self.id}")
                else:
                    issued = self.authority.issue_from_csr(csr, CertKind.STATION_CLIENT, owner=self.id,
                                                           actor=f"station:{self.id}")
                assert issued.record.id is not None
                self.lifecycle.record_issued(self.id, issued.record.id, certificate_type or "")
                return issued.chain_pem(), issued.record.id, issued.certificate

            chain_pem, cert_id, leaf = await asyncio.to_thread(_issue)
            res = await self.call(call.CertificateSigned(certificate_chain=chain_pem,
                                                         certificate_type=certificate_type))
            status = res.status if res is not None else "Rejected"
            await asyncio.to_thread(self.lifecycle.certificate_signed_result, self.id, cert_id, status)
            if status == "Accepted" and not v2g:  # the station reconnects with its new client certificate
                await asyncio.to_thread(self.lifecycle.station_connected, self.id, leaf)
        finally:
            self.tracker.end()


class _Tracker:
    """Counts A02 exchanges in flight (trigger → CSR → CertificateSigned), so tests can wait for quiet."""

    def __init__(self) -> None:
        self.n = 0
        self.cond = threading.Condition()

    def begin(self) -> None:
        with self.cond:
            self.n += 1

    def end(self) -> None:
        with self.cond:
            self.n -= 1
            self.cond.notify_all()

    def wait_zero(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.n == 0, timeout)


@dataclass
class _Queued:
    station_id: str
    action: str
    payload: dict[str, Any]
    future: concurrent.futures.Future[Any] | None = None


@dataclass
class OcppFleetGateway:
    """A StationGateway over real ocpp ChargePoints; offline stations keep their calls queued until reconnect."""

    authority: Authority
    lifecycle: StationLifecycle
    fleet: SimulatedFleet
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    csms: dict[str, CsmsSide] = field(default_factory=dict)
    online: dict[str, bool] = field(default_factory=dict)
    messages: dict[str, _Queued] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    tracker: _Tracker = field(default_factory=_Tracker)
    tasks: dict[str, list[asyncio.Future[Any]]] = field(default_factory=dict)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        for sid in self.fleet.fleet:
            self.online[sid] = False
            self.set_online(sid, True)

    def stop(self) -> None:
        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)
        self.loop.close()

    def set_online(self, sid: str, online: bool) -> None:
        if online and not self.online.get(sid):
            async def _connect() -> None:
                a, b = _Pipe(), _Pipe()
                a.peer, b.peer = b, a
                station = StationSide(sid, a, self.fleet, self.tracker)
                csms = CsmsSide(sid, b, self.authority, self.lifecycle, self.tracker)
                self.csms[sid] = csms
                self.tasks[sid] = [asyncio.ensure_future(station.start()), asyncio.ensure_future(csms.start())]

            asyncio.run_coroutine_threadsafe(_connect(), self.loop).result(5)
        if not online and self.online.get(sid):  # drop the connection: nothing reaches the station any more
            for task in self.tasks.pop(sid, []):
                self.loop.call_soon_threadsafe(task.cancel)
        self.online[sid] = online
        if online:
            for mid, q in self.messages.items():
                if q.station_id == sid and q.future is None:
                    self._dispatch(mid)

    def _dispatch(self, mid: str) -> None:
        q = self.messages[mid]
        cls = getattr(call, q.action)
        payload = cls(**camel_to_snake_case(q.payload))
        q.future = asyncio.run_coroutine_threadsafe(self.csms[q.station_id].call(payload), self.loop)

    # --- StationGateway ---

    def stations(self, hierarchy: str) -> list[str]:
        return self.fleet.stations_for(hierarchy)

    def enqueue(self, station_id: str, action: str, payload: dict[str, Any], job_id: str) -> str:
        if job_id in self.by_key:
            return self.by_key[job_id]
        mid = f"o{len(self.messages) + 1}"
        self.messages[mid] = _Queued(station_id, action, payload)
        self.by_key[job_id] = mid
        if self.online.get(station_id):
            self._dispatch(mid)
        return mid

    def result(self, message_id: str) -> CallResult:
        q = self.messages[message_id]
        if q.future is None or not q.future.done():
            return CallResult(CallState.PENDING)
        exc = q.future.exception()
        if exc is not None:
            return CallResult(CallState.ERROR, error=f"{type(exc).__name__}: {exc}")
        res = q.future.result()
        if res is None:
            return CallResult(CallState.ERROR, error="CALLERROR")
        return CallResult(CallState.ANSWERED, payload=_camel(res))

    def inventory(self, station_id: str) -> StationInventory:
        st = self.fleet.fleet[station_id]
        return StationInventory(station_id, bool(self.online.get(station_id)), st.arcc, frozenset(st.hierarchies))

    def wait_quiet(self, timeout: float = 20.0) -> None:
        """Block until every dispatched call has its answer and no A02 exchange is in flight."""
        futures = [q.future for q in self.messages.values() if q.future is not None]
        concurrent.futures.wait(futures, timeout=timeout)
        assert self.tracker.wait_zero(timeout), "A02 exchanges did not finish"
        futures = [q.future for q in self.messages.values() if q.future is not None]
        concurrent.futures.wait(futures, timeout=timeout)
