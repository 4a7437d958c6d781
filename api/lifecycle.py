"""Binds the lifecycle domain (jobs, rotation, expiry watch, station certificate lifecycle) to the services.

Configuration (``PNC_LIFECYCLE_*``, kept out of the shared Settings so this area stays self-contained):

* ``PNC_LIFECYCLE_GATEWAY=module:factory`` — ``factory(services) -> StationGateway``; default the OCPP outbox
  adapter (``api.lifecycle_gateway:outbox_gateway``), a simulator in tests/demos. Set it empty and rotation jobs
  prepare the new CAs and then wait.
* ``PNC_LIFECYCLE_GRACE_HOURS`` (24) — how long a superseded station certificate stays valid.
* ``PNC_LIFECYCLE_THRESHOLDS`` — e.g. ``station-client=30d,secc-leaf=14d,csms-sub=180d`` (overrides defaults).
* ``PNC_LIFECYCLE_WATCH`` (true), ``PNC_LIFECYCLE_INTERVAL_S`` (300), ``PNC_LIFECYCLE_LEASE_TTL_S`` (900).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from api.context import Services
from api.failure_log import RepeatedFailureLog
from pki.clock import Clock
from pki.lifecycle.expiry import ExpiryWatch, parse_thresholds
from pki.lifecycle.gateway import StationGateway
from pki.lifecycle.jobs import JobEngine
from pki.lifecycle.rotation import RootRotation
from pki.lifecycle.stations import Revoker, StationLifecycle, default_revoker
from pki.store.models import Certificate

log = logging.getLogger("pnc.lifecycle")


class LifecycleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PNC_LIFECYCLE_", env_file=None, extra="ignore")

    gateway: str = "api.lifecycle_gateway:outbox_gateway"
    grace_hours: float = 24.0
    thresholds: str = ""
    watch: bool = True
    interval_s: float = 300.0
    lease_ttl_s: float = 900.0


@dataclass
class Lifecycle:
    settings: LifecycleSettings
    gateway: StationGateway | None
    stations: StationLifecycle
    rotation: RootRotation
    engine: JobEngine
    watch: ExpiryWatch


def load_gateway(spec: str, services: Services) -> StationGateway | None:
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError("PNC_LIFECYCLE_GATEWAY must look like 'package.module:factory'")
    factory: Callable[[Services], StationGateway] = getattr(importlib.import_module(module), attr)
    return factory(services)


def _revoker(services: Services, clock: Clock) -> Revoker:
    """The revocation service's ``revoke`` (OCSP/CRL refresh) when present, else a plain audited status change."""
    try:
        revocation = importlib.import_module("pki.revocation")
    except ImportError:
        return default_revoker(services.db, clock)

    def _revoke(record: Certificate, reason: str, actor: str) -> None:
        listeners = [f for f in (getattr(getattr(services, "ocsp", None), "on_revocation", None),
                                 getattr(getattr(services, "crl", None), "on_revocation", None)) if f is not None]
        revocation.revoke(services.authority, record, reason, actor=actor, listeners=listeners)

    return _revoke


def lifecycle_for(services: Services, *, gateway: StationGateway | None = None, clock: Clock | None = None,
                  settings: LifecycleSettings | None = None) -> Lifecycle:
    """One Lifecycle per Services (cached on it); pass ``gateway``/``clock`` to override (tests)."""
    cached: Lifecycle | None = getattr(services, "_lifecycle", None)
    if cached is not None and gateway is None and clock is None and settings is None:
        return cached
    cfg = settings or LifecycleSettings()
    clk = clock or services.authority.clock
    gw = gateway if gateway is not None else load_gateway(cfg.gateway, services)
    stations = StationLifecycle(services.db, clk, grace=dt.timedelta(hours=cfg.grace_hours),
                                revoker=_revoker(services, clk))
    rotation = RootRotation(services.authority, gw, stations)
    engine = JobEngine(services.db, clock=clk, handlers=[rotation])
    watch = ExpiryWatch(services.db, clk, gateway=gw, lifecycle=stations, engine=engine,
                        thresholds=parse_thresholds(cfg.thresholds),
                        lease_ttl=dt.timedelta(seconds=cfg.lease_ttl_s))
    lc = Lifecycle(cfg, gw, stations, rotation, engine, watch)
    services._lifecycle = lc  # type: ignore[attr-defined]
    return lc


def start_background(services: Services) -> Callable[[], None]:
    """Run the expiry watch (and open jobs) every ``interval_s`` in a daemon thread; returns ``stop``."""
    lc = lifecycle_for(services)
    if not lc.settings.watch:
        return lambda: None
    stop = threading.Event()
    failures = RepeatedFailureLog(log, "expiry watch tick")

    def _loop() -> None:
        # the first tick waits one interval: start-up (migrations, recovery) finishes first
        while not stop.wait(lc.settings.interval_s):
            try:
                report = lc.watch.tick()
                if report.leader and (report.triggered or report.warned or report.revoked):
                    log.info("expiry watch: %d renewals triggered, %d warnings, %d revoked",
                             len(report.triggered), len(report.warned), report.revoked)
                failures.ok()
            except Exception as exc:  # keep the watch alive; the next tick retries
                failures.failed(exc)

    thread = threading.Thread(target=_loop, name="pnc-expiry-watch", daemon=True)
    thread.start()

    def _stop() -> None:
        stop.set()
        thread.join(timeout=10)

    return _stop


def report_dict(obj: Any) -> Any:
    return obj.as_dict() if hasattr(obj, "as_dict") else obj


# --- hooks for the OCPP endpoint (one call per event) ------------------------------------------------------


def on_station_connected(services: Services, station_id: str, client_certificate: Any | None = None) -> None:
    """A station (re)connected. Records the client certificate it used (SP3: supersedes older ones), renews its
    expiring certificates now, and advances open jobs it takes part in (its queued calls were just delivered)."""
    lc = lifecycle_for(services)
    if client_certificate is not None:
        lc.stations.station_connected(station_id, client_certificate)
    lc.watch.station_connected(station_id)
    lc.engine.run_open_jobs_for_station(station_id)


def on_certificate_issued(services: Services, station_id: str, certificate_id: int, certificate_type: str) -> None:
    """The endpoint signed a SignCertificate CSR and is about to send CertificateSigned."""
    lifecycle_for(services).stations.record_issued(station_id, certificate_id, certificate_type)


def on_certificate_signed_answer(services: Services, station_id: str, certificate_id: int, status: str,
                                 status_info: dict[str, str] | None = None) -> None:
    """The station's CertificateSignedResponse (Rejected is surfaced: audit + log warning)."""
    lifecycle_for(services).stations.certificate_signed_result(station_id, certificate_id, status, status_info)


def on_security_event(services: Services, station_id: str, event_type: str, tech_info: str | None = None,
                      timestamp: dt.datetime | None = None) -> None:
    """SecurityEventNotification; InvalidChargingStationCertificate & co mark the new certificate rejected."""
    lifecycle_for(services).stations.security_event(station_id, event_type, tech_info, timestamp)
