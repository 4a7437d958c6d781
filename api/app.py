"""``create_app(settings)``: the FastAPI application with its lifespan.

Start-up migrates the database, recovers interrupted issuance and, in development mode, creates the development
PKI and an admin token (written to ``var/admin-token``, mode 0600).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import background, console, lifecycle, observability, ocsp_http
from api.context import Services, bootstrap, build_services
from api.deps import register_public, register_station_route
from api.middleware import LimitsMiddleware
from api.ocpp import endpoint as ocpp_endpoint
from api.ocsp_listener import OcspListener
from api.ocsp_stats import OcspCollector
from api.rest import (
    cas,
    certificates,
    csms,
    lifecycle_api,
    ocsp_api,
    problems,
    public,
    reports,
    revocation,
    security,
    stations,
)
from api.rest.contracts import router as contracts_router
from api.settings import Settings


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    settings = settings or (services.settings if services else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = services is None
        svc = services or build_services(settings)
        bootstrap(svc)
        app.state.services = svc
        if metrics.observe_issuance not in svc.authority.observers:
            svc.authority.observers.append(metrics.observe_issuance)
        checkpointer = background.start(svc)
        stop_lifecycle = lifecycle.start_background(svc)
        listener = None
        try:
            async with ocsp_http.background(svc):
                if svc.settings.ocsp_port is not None:
                    listener = OcspListener(svc, ocsp_stats, max_body_bytes=svc.settings.max_body_bytes,
                                            keep_alive_seconds=svc.settings.ocsp_keep_alive_seconds)
                    await listener.start(svc.settings.ocsp_host or svc.settings.host, svc.settings.ocsp_port)
                    app.state.ocsp_listener = listener
                yield
        finally:
            if listener is not None:
                await listener.close()
            await background.stop(checkpointer)
            stop_lifecycle()
            if own:
                svc.close()

    app = FastAPI(
        title="pnc-pki",
        version="0.1.0",
        description="Plug & Charge PKI: ISO 15118 and OCPP certificates, OCSP, CRLs.",
        lifespan=lifespan,
    )
    if services is not None:
        app.state.services = services
    problems.install(app)
    metrics = observability.install(app)
    app.include_router(public.router)
    app.include_router(cas.router)
    app.include_router(reports.router)  # before certificates: /certificates/{cert_id} would capture its paths
    app.include_router(certificates.router)
    app.include_router(revocation.router)
    app.include_router(ocsp_api.router)
    app.include_router(ocpp_endpoint.router)
    register_station_route("/ocpp/{station_id}", "stations authenticate at the WebSocket handshake (OCPP "
                           "security profiles 1-3) and are confined to their own identity")
    app.include_router(stations.router)
    app.include_router(csms.router)
    app.include_router(security.tokens)
    app.include_router(security.clients)
    app.include_router(security.audit)
    app.add_middleware(LimitsMiddleware, max_body_bytes=settings.max_body_bytes,  # type: ignore[arg-type]
                       timeout_seconds=settings.request_timeout_seconds,
                       path_limits={certificates.BATCH_PATH: settings.max_batch_body_bytes})
    app.include_router(console.router)
    for path in console.PUBLIC_PATHS:  # the static shell only; every data call needs a token
        register_public(path, "operator console shell (static files, no data)")
    app.include_router(contracts_router)
    ocsp_stats = ocsp_http.install(app, max_body_bytes=settings.max_body_bytes)  # /ocsp, /crl: lean, in front
    metrics.registry.register(OcspCollector(ocsp_stats, lambda: getattr(app.state, "services", None)))
    app.include_router(lifecycle_api.router)
    return app
