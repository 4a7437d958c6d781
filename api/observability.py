"""Request ids, structured JSON logs and Prometheus metrics.

- Every HTTP request gets an id (a well-formed ``X-Request-ID`` from the client, else a fresh one), echoed in the
  response and put in every log line written while the request runs, so a CSMS can correlate its call with our
  audit records.
- Logs are JSON lines (``PNC_LOG_FORMAT=json``, the default for ``pnc serve``) or plain text.
- ``/metrics`` (Prometheus text format, bearer token with any read role) exposes issuance, HTTP, and state gauges
  computed at scrape time (certificates expiring per window, CAs). Other parts (OCSP, OCPP) register their own
  collectors on the same registry via ``app.state.metrics``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from api.deps import READ_ROLES, Actor, require
from pki.clock import utc
from pki.store import lifecycle_repo, ocpp_repo
from pki.store.models import Certificate, CertificateAuthority, CertStatus

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("pnc_request_id", default=None)
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    """The app's metric objects on its own registry (several apps in one test process must not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.issuance = Counter("pnc_issuance_total", "Certificate issuance attempts", ["kind", "outcome"],
                                registry=self.registry)
        self.issuance_seconds = Histogram("pnc_issuance_seconds", "Issuance latency (policy, record, sign)",
                                          ["kind"], registry=self.registry,
                                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
        self.http_requests = Counter("pnc_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                     registry=self.registry)
        self.http_seconds = Histogram("pnc_http_request_seconds", "HTTP request latency", ["route"],
                                      registry=self.registry,
                                      buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0))

    def observe_issuance(self, kind: str, outcome: str, seconds: float) -> None:
        self.issuance.labels(kind, outcome).inc()
        if outcome == "issued":
            self.issuance_seconds.labels(kind).observe(seconds)


class StateCollector(Collector):
    """Gauges read from the database: aggregates over the certificate, outbox and job tables.

    Counting certificates by status is a scan of an index, so its cost grows with the table (bench/growth.py:
    ~4 ms at 2k rows, ~25 ms at 20k on SQLite). The result is therefore computed at most every ``ttl_s`` seconds
    and served from memory in between: several Prometheus servers scraping every few seconds cost one pass per
    TTL, and a scrape is constant time. The gauges are at most ``ttl_s`` old (well inside a scrape interval).
    """

    WINDOWS = (("7d", 7), ("30d", 30), ("90d", 90))

    def __init__(self, services_getter: Callable[[], Any], ttl_s: float = 10.0) -> None:
        self._services = services_getter
        self.ttl_s = ttl_s
        self._cached: list[GaugeMetricFamily] | None = None
        self._cached_at = 0.0
        self._lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:  # concurrent scrapes wait for one computation instead of running their own
            if self._cached is None or time.monotonic() - self._cached_at >= self.ttl_s:
                fresh = list(self._compute())
                if fresh:  # the database may be down: keep serving the last good values
                    self._cached, self._cached_at = fresh, time.monotonic()
            cached, age = self._cached or [], time.monotonic() - self._cached_at
        yield from cached
        if cached:
            yield GaugeMetricFamily("pnc_state_metrics_age_seconds", "Age of the database-derived gauges (grows "
                                    "while the database is unreachable)", value=age)

    def _compute(self) -> Iterator[GaugeMetricFamily]:
        services = self._services()
        if services is None:
            return
        now = dt.datetime.now(dt.UTC)
        expiring = GaugeMetricFamily("pnc_certificates_expiring", "Valid certificates expiring within a window",
                                     labels=["window"])
        valid = GaugeMetricFamily("pnc_certificates", "Certificates by status", labels=["status"])
        cas = GaugeMetricFamily("pnc_certificate_authorities", "CAs by status", labels=["status"])
        try:
            with services.db.reader() as conn:
                for label, days in self.WINDOWS:
                    n = conn.execute(
                        select(func.count()).select_from(Certificate).where(
                            Certificate.status == CertStatus.VALID,  # type: ignore[arg-type]
                            Certificate.not_after <= now + dt.timedelta(days=days),  # type: ignore[arg-type,operator]
                            Certificate.not_after > now,  # type: ignore[arg-type,operator]
                        )
                    ).scalar_one()
                    expiring.add_metric([label], n)
                for status, n in conn.execute(
                    select(Certificate.status, func.count()).group_by(Certificate.status)  # type: ignore[arg-type]
                ):
                    valid.add_metric([status], n)
                for status, n in conn.execute(
                    select(CertificateAuthority.status, func.count()).group_by(CertificateAuthority.status)  # type: ignore[arg-type]
                ):
                    cas.add_metric([status], n)
            outbox = self._outbox(services)
            jobs = self._jobs(services)
        except Exception:  # the database may be down; /metrics must still answer
            return
        yield expiring
        yield valid
        yield cas
        yield from outbox
        yield from jobs

    @staticmethod
    def _outbox(services: Any) -> list[GaugeMetricFamily]:
        depth = GaugeMetricFamily("pnc_outbox_rows", "CSMS->station calls waiting (pending) or on the wire (sent)",
                                  labels=["status", "delivery"])
        age = GaugeMetricFamily("pnc_outbox_oldest_age_seconds", "Age of the oldest waiting call",
                                labels=["status", "delivery"])
        now = dt.datetime.now(dt.UTC)
        for status, delivery, n, oldest in ocpp_repo.outbox_depth(services.db):
            depth.add_metric([status, delivery], n)
            if oldest is not None:
                age.add_metric([status, delivery], max(0.0, (now - utc(oldest)).total_seconds()))
        return [depth, age]

    @staticmethod
    def _jobs(services: Any) -> list[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("pnc_jobs", "Lifecycle jobs by kind and status", labels=["kind", "status"])
        items = GaugeMetricFamily("pnc_job_items", "Stations of each unfinished job by state (rotation progress)",
                                  labels=["job_id", "kind", "phase", "state"])
        for kind, status, n in lifecycle_repo.job_counts(services.db):
            jobs.add_metric([kind, status], n)
        for job_id, kind, phase, state, n in lifecycle_repo.open_job_progress(services.db):
            items.add_metric([str(job_id), kind, phase, state], n)
        return [jobs, items]


class ConnectionCollector(Collector):
    """Stations connected to this process (each instance reports its own; sum them in Prometheus)."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runtime = getattr(self._state, "ocpp", None)
        gauge = GaugeMetricFamily("pnc_ocpp_connected_stations", "Stations with an open OCPP WebSocket to this "
                                  "instance", labels=["version"])
        counts: dict[str, int] = {}
        for session in list(getattr(runtime, "sessions", {}).values()):
            counts[session.version] = counts.get(session.version, 0) + 1
        for version in ("1.6", "2.0.1", "2.1"):
            gauge.add_metric([version], counts.pop(version, 0))
        for version, n in counts.items():
            gauge.add_metric([version], n)
        yield gauge


class RequestContextMiddleware:
    """Pure ASGI: request id in, request id out, per-route metrics (no BaseHTTPMiddleware overhead)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = incoming if incoming and REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or _coarse(scope.get("path", ""))
            self.metrics.http_requests.labels(scope.get("method", ""), path, str(status)).inc()
            self.metrics.http_seconds.labels(path).observe(time.perf_counter() - started)
            request_id_var.reset(token)


def _coarse(path: str) -> str:
    """Unmatched paths are bucketed so scanners cannot blow up label cardinality."""
    first = path.split("/")[1] if path.count("/") >= 1 else ""
    return f"/{first}/*" if first in ("ocsp", "crl", "ca", "ocpp", "console") else "unmatched"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__  # type only: exception text may carry input data
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(fmt: str = "json", level: str = "INFO") -> dict[str, Any]:
    """Logging config for uvicorn's ``log_config`` (so its access log is JSON too)."""
    formatter = {"()": JsonFormatter} if fmt == "json" else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}},
        "loggers": {
            "": {"handlers": ["default"], "level": level},
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["default"], "level": level, "propagate": False},
        },
    }


def install(app: Any) -> Metrics:
    """Attach metrics, the request-context middleware and the /metrics route to ``app``."""

    m = Metrics()
    app.state.metrics = m
    m.registry.register(StateCollector(lambda: getattr(app.state, "services", None)))
    m.registry.register(ConnectionCollector(app.state))
    app.add_middleware(RequestContextMiddleware, metrics=m)

    ops = APIRouter(tags=["operations"])

    @ops.get("/metrics", summary="Prometheus metrics (bearer token with a read role)", response_class=Response)
    def metrics_endpoint(request: Request, _: Annotated[Actor, Depends(require(*READ_ROLES))]) -> Response:
        registry: CollectorRegistry = request.app.state.metrics.registry
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(ops)
    return m
