"""Process-wide OCPP state: connected sessions, the outbox dispatcher, webhook delivery, the signing pool.

The outbox is the only way pnc-pki calls a station: every CSMS→station message (CertificateSigned after a
SignCertificate, operator commands) is a row first. A connected station's rows are sent one at a time; a row
whose station is offline backs off exponentially (``outbox_backoff_base`` doubling up to ``outbox_backoff_max``)
and is sent at once when the station reconnects. The station's answer is stored on the row and applied to what
we know about the station (its certificate inventory).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509

from api import lifecycle
from api.context import Services
from api.failure_log import RepeatedFailureLog
from api.ocpp.core import Channel, StationCore, lifecycle_hook
from api.ocpp.settings import OcppSettings
from api.ocpp.station_cp import CallErrorReceived
from pki import stations
from pki.errors import InvalidRequest, PkiError
from pki.lifecycle.jobs import process_holder
from pki.store import ocpp_repo, repo
from pki.store.ocpp_models import OcppInstalledCertificate, OcppOutbox, OutboxStatus

log = logging.getLogger("pnc.ocpp")

COMMANDS = ("InstallCertificate", "DeleteCertificate", "GetInstalledCertificateIds", "TriggerMessage",
            "CertificateSigned", "ExtendedTriggerMessage")


@dataclass
class Session:
    station_id: str
    version: str
    cp: Any
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    closed: bool = False

    def end(self) -> None:
        """Stop the delivery loop. Cancellation alone is not enough on Python 3.11: ``asyncio.wait_for`` (used
        by the ocpp package's call) can swallow a cancel that races the answer, and the loop then sleeps on
        ``wake`` forever, keeping uvicorn's shutdown waiting; the flag plus a wake-up ends it either way."""
        self.closed = True
        self.wake.set()
        if self.task is not None:
            self.task.cancel()


class OcppRuntime:
    def __init__(self, services: Services, settings: OcppSettings | None = None) -> None:
        self.services = services
        self.settings = settings or OcppSettings()
        self.core = StationCore(services, self.settings)
        self.sessions: dict[str, Session] = {}
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pnc-sign")
        # lifecycle work triggered by station traffic (connect, answers to rotation calls) runs here, one at a
        # time and off the event loop; a station already waiting for a pass is not queued twice
        self.lifecycle_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pnc-lifecycle")
        self._lifecycle_pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self.core.defer = lambda fn: self._defer(fn)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._webhooks: set[asyncio.Task[None]] = set()
        self._tick_failures = RepeatedFailureLog(log, "outbox tick")
        # unique per process start: a restarted process (same host and pid in a container) is a new holder, so
        # the calls its predecessor left "sent" are recognised as orphans
        self.instance_id = self.settings.instance_id or f"{process_holder()}:{secrets.token_hex(3)}"
        self._lease = dt.timedelta(seconds=self.settings.connection_lease)
        self._renewed_at = 0.0

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        # calls cut off by a dead instance (this process' predecessor, or another one); calls in flight on live
        # instances stay as they are
        await asyncio.to_thread(ocpp_repo.requeue_orphans, self.services.db, self.core.now())
        self._ticker = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for session in list(self.sessions.values()):
            session.end()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.lifecycle_executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):  # the database may be down; the leases then simply run out
            await asyncio.to_thread(self._release_all)

    def _release_all(self) -> None:
        ocpp_repo.requeue_sent(self.services.db, sent_by=self.instance_id)
        ocpp_repo.release_instance(self.services.db, self.instance_id)

    def _defer(self, fn: Callable[[], None], station_id: str | None = None) -> None:
        """Run ``fn`` on the lifecycle thread. A job pass of ``station_id`` queued before it no longer counts as
        pending: the next one is queued after ``fn``, so it sees what ``fn`` changed (no lost wake-up)."""
        if station_id is not None:
            with self._pending_lock:
                self._lifecycle_pending.discard(station_id)
        try:
            self.lifecycle_executor.submit(fn)
        except RuntimeError:  # shutting down: do it here rather than lose it
            fn()

    def station_event(self, station_id: str, client_certificate: x509.Certificate | None = None,
                      connected: bool = False) -> None:
        """Let the lifecycle react to a station's traffic in the background: a (re)connect records the client
        certificate it used (SP3: supersedes older ones) and renews expiring certificates; any event advances the
        rotation jobs the station takes part in (the answer it just gave may complete a step). Connects are always
        queued (they carry the certificate); a job pass already waiting for the station is not queued twice."""
        if not connected:
            with self._pending_lock:
                if station_id in self._lifecycle_pending:
                    return
                self._lifecycle_pending.add(station_id)

        def work() -> None:
            if not connected:
                with self._pending_lock:
                    self._lifecycle_pending.discard(station_id)
            try:
                if connected:
                    lifecycle.on_station_connected(self.services, station_id, client_certificate)
                else:
                    lifecycle.lifecycle_for(self.services).engine.run_open_jobs_for_station(station_id)
            except Exception as exc:  # lifecycle trouble must not touch the OCPP session
                log.error("lifecycle update for %s failed: %s: %s", station_id, type(exc).__name__, str(exc)[:200])

        try:
            self.lifecycle_executor.submit(work)
        except RuntimeError:  # shutting down
            with self._pending_lock:
                self._lifecycle_pending.discard(station_id)

    def channel(self, delivery: str = "direct") -> Channel:
        return Channel(delivery=delivery, notify=self.notify)

    def notify(self, station_id: str) -> None:
        """Thread-safe: a new outbox row exists for ``station_id``."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._wake, station_id)

    def _wake(self, station_id: str) -> None:
        session = self.sessions.get(station_id)
        if session is not None:
            session.wake.set()
        self._schedule_webhooks()

    # --- sessions -----------------------------------------------------------------------------------------

    async def attach(self, session: Session) -> None:
        old = self.sessions.get(session.station_id)
        if old is not None:
            old.end()
        self.sessions[session.station_id] = session
        await asyncio.to_thread(ocpp_repo.claim_connection, self.services.db, session.station_id, self.instance_id,
                                self.core.now(), self._lease)
        session.task = asyncio.create_task(self._deliver_forever(session))

    async def detach(self, session: Session) -> None:
        if self.sessions.get(session.station_id) is session:
            del self.sessions[session.station_id]
        session.end()
        if session.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await session.task
        await asyncio.to_thread(self._release, session.station_id)

    def _release(self, station_id: str) -> None:
        # our calls to it that are still on the wire go back to pending (delivered again on its next connect)
        ocpp_repo.requeue_sent(self.services.db, station_id, sent_by=self.instance_id)
        if station_id not in self.sessions:  # not replaced by a newer connection to this instance
            ocpp_repo.release_connection(self.services.db, station_id, self.instance_id)

    async def _deliver_forever(self, session: Session) -> None:
        """Deliver everything pending at connect (back-off ignored), then sleep until woken.

        Sessions never poll: a new row (``notify``) or the global tick (rows whose back-off elapsed) wakes them,
        so 10,000 idle stations cost no database queries.
        """
        ignore_backoff = True
        while not session.closed:
            session.wake.clear()
            rows = await asyncio.to_thread(ocpp_repo.due_outbox, self.services.db, self.core.now(),
                                           station_ids=[session.station_id], ignore_backoff=ignore_backoff)
            ignore_backoff = False
            for row in rows:
                if session.closed or self.sessions.get(session.station_id) is not session:
                    return
                await self._deliver(session, row)
            if rows:
                continue  # more may have arrived meanwhile
            await session.wake.wait()

    async def _deliver(self, session: Session, row: OcppOutbox) -> None:
        assert row.id is not None
        db = self.services.db
        if not await asyncio.to_thread(ocpp_repo.claim_outbox, db, row.id, self.core.now(), self.instance_id):
            return
        try:
            answer = await session.cp.call_raw(row.action, json.loads(row.payload), wrap=row.wrap,
                                               timeout=self.settings.call_timeout)
        except CallErrorReceived as exc:
            await asyncio.to_thread(ocpp_repo.update_outbox, db, row.id, status=OutboxStatus.FAILED,
                                    error=f"CALLERROR {exc.code}: {exc.description}"[:512],
                                    answered_at=self.core.now())
            self._after_outcome(row)
            return
        except (TimeoutError, ConnectionError, RuntimeError, OSError) as exc:
            await asyncio.to_thread(self._back_off, row.id, row.attempts + 1, type(exc).__name__)
            return
        except Exception as exc:  # schema errors of a stored payload: never retry a call the station cannot take
            await asyncio.to_thread(ocpp_repo.update_outbox, db, row.id, status=OutboxStatus.FAILED,
                                    error=f"{type(exc).__name__}: {str(exc)[:400]}")
            self._after_outcome(row)
            return
        await asyncio.to_thread(self.record_answer, row, answer)
        self._after_outcome(row)

    def _after_outcome(self, row: OcppOutbox) -> None:
        """A lifecycle call (rotation, renewal) or a CertificateSigned got its outcome: advance the jobs."""
        if (row.actor or "").startswith("lifecycle:") or row.action == "CertificateSigned":
            self.station_event(row.station_id)

    def _back_off(self, outbox_id: int, attempts: int, reason: str) -> None:
        delay = min(self.settings.outbox_backoff_base * 2 ** max(attempts - 1, 0), self.settings.outbox_backoff_max)
        status = OutboxStatus.PENDING if attempts < self.settings.outbox_max_attempts else OutboxStatus.FAILED
        ocpp_repo.update_outbox(self.services.db, outbox_id, status=status, attempts=attempts, error=reason[:512],
                                next_attempt_at=self.core.now() + dt.timedelta(seconds=delay))

    # --- the periodic tick: offline back-off, expiry, webhooks -------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            try:
                online = await asyncio.to_thread(self.tick)
                for station_id in online:
                    session = self.sessions.get(station_id)
                    if session is not None:
                        session.wake.set()
                self._schedule_webhooks()
                self._tick_failures.ok()
            except Exception as exc:
                self._tick_failures.failed(exc)
            await asyncio.sleep(self.settings.outbox_tick)

    def tick(self) -> set[str]:
        """One pass over due rows: expire rows past their TTL, back off rows of offline stations, and return the
        connected stations that have due rows (their sessions are woken). Rows of stations connected to another
        live instance are that instance's to deliver; every ``connection_renew`` s this instance renews the
        leases of its connections and requeues calls orphaned by dead instances."""
        db = self.services.db
        now = self.core.now()
        if time.monotonic() - self._renewed_at >= self.settings.connection_renew:
            ocpp_repo.renew_connections(db, self.instance_id, now, self._lease)
            ocpp_repo.requeue_orphans(db, now)
            self._renewed_at = time.monotonic()
        online: set[str] = set()
        rows = ocpp_repo.due_outbox(db, now, limit=500)
        elsewhere = ocpp_repo.live_owners(db, sorted({r.station_id for r in rows if r.station_id not in self.sessions}),
                                          now)
        for row in rows:
            assert row.id is not None
            if row.expires_at is not None and _utc(row.expires_at) < now:
                ocpp_repo.update_outbox(db, row.id, status=OutboxStatus.EXPIRED, error="expired")
            elif row.station_id in self.sessions:
                online.add(row.station_id)
            elif row.station_id not in elsewhere:
                self._back_off(row.id, row.attempts + 1, "station offline")
        return online

    def _schedule_webhooks(self) -> None:
        if not self.settings.csms_webhook_url or self._webhooks:
            return
        task = asyncio.get_running_loop().create_task(self._push_webhooks())
        self._webhooks.add(task)
        task.add_done_callback(self._webhooks.discard)

    async def _push_webhooks(self) -> None:
        url = self.settings.csms_webhook_url
        assert url is not None
        rows = await asyncio.to_thread(ocpp_repo.list_outbox, self.services.db, status=OutboxStatus.PENDING,
                                       delivery="csms", limit=100)
        headers = {"authorization": f"Bearer {self.settings.csms_webhook_secret}"} \
            if self.settings.csms_webhook_secret else {}
        async with httpx.AsyncClient(timeout=5.0) as client:
            for row in rows:
                if row.webhook_status == "delivered" or _utc(row.next_attempt_at) > self.core.now():
                    continue
                assert row.id is not None
                try:
                    res = await client.post(url, json=pending_view(row), headers=headers)
                    ok = 200 <= res.status_code < 300
                except httpx.HTTPError:
                    ok = False
                if ok:
                    await asyncio.to_thread(ocpp_repo.update_outbox, self.services.db, row.id,
                                            webhook_status="delivered", sent_at=self.core.now())
                else:
                    await asyncio.to_thread(self._webhook_back_off, row)

    def _webhook_back_off(self, row: OcppOutbox) -> None:
        assert row.id is not None
        attempts = row.attempts + 1
        delay = min(self.settings.outbox_backoff_base * 2 ** (attempts - 1), self.settings.outbox_backoff_max)
        ocpp_repo.update_outbox(self.services.db, row.id, attempts=attempts, webhook_status="failed",
                                next_attempt_at=self.core.now() + dt.timedelta(seconds=delay))

    # --- commands (REST / CLI) ---------------------------------------------------------------------------

    def enqueue_command(self, station_ids: Sequence[str], action: str, payload: dict[str, Any], *, actor: str,
                        pnc: bool = False) -> list[OcppOutbox]:
        """Validate against the station's protocol version and queue; blocking (call from a thread)."""
        from ocpp.messages import MessageType

        from api.ocpp.schema_formats import get_validator

        if action not in COMMANDS:
            raise InvalidRequest(f"{action} is not a certificate-management command; one of {', '.join(COMMANDS)}")
        if action == "InstallCertificate":
            stations.check_installable_root(str(payload.get("certificate", "")))
        rows = []
        for sid in station_ids:
            station = stations.get_station(self.services.db, sid)
            version = station.ocpp_version or "2.0.1"
            wrap = "pnc" if pnc and version == "1.6" else None
            schema_version = "2.0.1" if wrap == "pnc" else version
            try:
                get_validator(MessageType.Call, action, schema_version).validate(payload)
            except OSError:
                raise InvalidRequest(f"{action} does not exist in OCPP {schema_version}") from None
            except Exception as exc:
                raise InvalidRequest(f"payload is not a valid OCPP {schema_version} {action}: "
                                     f"{getattr(exc, 'message', exc)}"[:300]) from None
            ch = Channel(delivery="csms" if station.integration == "csms" else "direct", wrap=wrap,
                         notify=self.notify)
            rows.append(self.core.enqueue(sid, action, payload, ch, actor=actor))
        from pki.store import repo

        repo.add_audit(self.services.db, repo.audit_event(actor, "ocpp.command", "queued", target=action,
                                                          details={"stations": list(station_ids)[:50]}))
        return rows

    def record_answer(self, row: OcppOutbox, answer: dict[str, Any]) -> None:
        """Store the station's answer and apply it to the station's certificate inventory."""
        assert row.id is not None
        db = self.services.db
        payload = json.loads(row.payload)
        try:  # applied first, so whoever sees "answered" also sees its effect on the inventory
            self._apply(row, payload, answer)
        except (PkiError, ValueError, KeyError) as exc:
            log.warning("could not apply %s answer: %s", row.action, type(exc).__name__)
        ocpp_repo.update_outbox(db, row.id, status=OutboxStatus.ANSWERED, response=json.dumps(answer),
                                answered_at=self.core.now(), error=None)

    def _apply(self, row: OcppOutbox, payload: dict[str, Any], answer: dict[str, Any]) -> None:
        db = self.services.db
        sid = row.station_id
        if row.action == "GetInstalledCertificateIds":
            requested = payload.get("certificateType")
            types = requested if isinstance(requested, list) else ([requested] if requested else None)
            items: list[OcppInstalledCertificate] = []
            if answer.get("status") == "Accepted":
                for entry in answer.get("certificateHashDataChain", []):  # 2.0.1 / 2.1
                    items.append(_inventory(sid, entry["certificateType"], entry["certificateHashData"],
                                            entry.get("childCertificateHashData", [])))
                for h in answer.get("certificateHashData", []):  # 1.6 security extension
                    items.append(_inventory(sid, str(requested), h, []))
            if answer.get("status") in ("Accepted", "NotFound"):
                ocpp_repo.replace_inventory(db, sid, types, items)
        elif row.action == "DeleteCertificate" and answer.get("status") == "Accepted":
            h = payload["certificateHashData"]
            ocpp_repo.remove_inventory(db, sid, hash_algorithm=h["hashAlgorithm"],
                                       issuer_name_hash=h["issuerNameHash"].lower(),
                                       issuer_key_hash=h["issuerKeyHash"].lower(),
                                       serial_number=ocpp_repo.inventory_serial(h["serialNumber"]))
        elif row.action == "InstallCertificate" and answer.get("status") == "Accepted":
            cert = x509.load_pem_x509_certificate(payload["certificate"].encode())
            ocpp_repo.add_inventory(db, _inventory(sid, payload["certificateType"],
                                                   stations.hash_data_for(cert, None, "SHA256"), []))
        elif row.action == "CertificateSigned":
            if answer.get("status") != "Accepted":
                ocpp_repo.add_event(db, sid, "certificate-rejected", answer.get("status"), answer)
            def signed_answer() -> None:
                record = _signed_record(db, payload)
                if record is not None and record.id is not None and record.owner == sid:
                    info = answer.get("statusInfo")
                    lifecycle_hook(lifecycle.on_certificate_signed_answer, self.services, sid, record.id,
                                   str(answer.get("status")), info if isinstance(info, dict) else None)

            self._defer(signed_answer, sid)


def _signed_record(db: Any, payload: dict[str, Any]) -> Any:
    """The certificate record behind a CertificateSigned payload (its leaf)."""
    chain = str(payload.get("certificateChain", ""))
    try:
        leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    except (ValueError, IndexError):
        return None
    return repo.record_of(db, leaf)


def _inventory(station_id: str, cert_type: str, h: dict[str, str], children: list[Any]) -> OcppInstalledCertificate:
    return OcppInstalledCertificate(
        station_id=station_id, certificate_type=cert_type, hash_algorithm=h["hashAlgorithm"],
        issuer_name_hash=h["issuerNameHash"].lower(), issuer_key_hash=h["issuerKeyHash"].lower(),
        serial_number=ocpp_repo.inventory_serial(h["serialNumber"]), children=json.dumps(children))


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def pending_view(row: OcppOutbox) -> dict[str, Any]:
    return {"id": row.id, "stationId": row.station_id, "action": row.action, "payload": json.loads(row.payload),
            "status": row.status, "createdAt": _utc(row.created_at).isoformat()}


def get_runtime(app: Any) -> OcppRuntime:
    runtime: OcppRuntime | None = getattr(app.state, "ocpp", None)
    if runtime is None:
        runtime = OcppRuntime(app.state.services)
        app.state.ocpp = runtime
    return runtime
