"""A real uvicorn server on a free port, and stations driven by the `ocpp` package's own ChargePoint."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from api.app import create_app
from api.context import Services
from api.ocpp.runtime import OcppRuntime
from api.ocpp.settings import OcppSettings
from api.ocpp.ws_protocol import uvicorn_ws_options
from pki import stations
from tests.helpers import free_port

PASSWORD = "station-password-0123456789"


@dataclass
class Server:
    url: str
    http: str
    runtime: OcppRuntime
    services: Services


@pytest.fixture
def ocpp_settings() -> OcppSettings:
    return OcppSettings(outbox_tick=0.2, outbox_backoff_base=0.2, outbox_backoff_max=1.0, call_timeout=5.0,
                        max_frame_bytes=32_768)


@contextlib.contextmanager
def serving(services: Services, ocpp_settings: OcppSettings) -> Iterator[Server]:
    """One pnc-pki instance (app + OCPP runtime) on a free port; several may share ``services`` (one database),
    as several processes share one PostgreSQL."""
    app = create_app(services=services)
    runtime = OcppRuntime(services, ocpp_settings)
    app.state.ocpp = runtime
    port = free_port()
    # the WebSocket implementation and compression `pnc serve` runs (PNC_OCPP_WS_COMPRESSION)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            **uvicorn_ws_options(ocpp_settings.ws_compression))
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Server(f"ws://127.0.0.1:{port}/ocpp", f"http://127.0.0.1:{port}", runtime, services)
    finally:
        stop_server(srv, thread)


@pytest.fixture
def server(services: Services, ocpp_settings: OcppSettings) -> Iterator[Server]:
    with serving(services, ocpp_settings) as srv:
        yield srv


def stop_server(srv: uvicorn.Server, thread: threading.Thread) -> None:
    """Graceful shutdown within 10 s (as an orchestrator would wait before SIGKILL). A server that does not stop
    is a bug (a session task outliving its connection kept one alive, ticking against a dropped test schema): it
    is forced down and the test fails."""
    srv.should_exit = True
    thread.join(timeout=10)
    if thread.is_alive():
        srv.force_exit = True
        thread.join(timeout=10)
        raise AssertionError("uvicorn did not shut down gracefully within 10 s")


def register(services: Services, station_id: str, *, serial: str | None = None, org: str = "Test CPO",
             seccs: tuple[str, ...] = ("DE*PNC*E12345*1",), profile: int = 1, integration: str = "direct") -> None:
    stations.register_station(services.db, stations.StationSpec(
        station_id=station_id, serial_number=serial or f"SN-{station_id}", organization=org, secc_ids=seccs,
        security_profile=profile, password=PASSWORD if profile < 3 else None, integration=integration),
        scrypt_n=2**10)


def basic(station_id: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode()}


def run(coro: object, timeout: float = 30) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]
