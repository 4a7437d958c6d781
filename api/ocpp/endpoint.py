"""``ws(s)://HOST:PORT/ocpp/{station_id}``: station authentication at the handshake, then the OCPP session.

Authentication happens before ``accept()``; a refused station gets a plain HTTP 401/403 (WebSocket denial
response) and never reaches OCPP:

- profile 1: HTTP Basic, user = station identity, password checked against its scrypt hash;
- profile 2: the same over TLS (``wss``: uvicorn terminates TLS, or a trusted proxy says ``X-Forwarded-Proto``);
- profile 3: a TLS client certificate issued by our station CA (csms-sub) with CN = the station's serial number
  and O = its organisation. uvicorn does not expose the peer certificate to ASGI apps, so it is read from the ASGI
  TLS extension when the server provides one, else from ``PNC_OCPP_CLIENT_CERT_HEADER`` set by a TLS-terminating
  proxy listed in ``PNC_OCPP_TRUSTED_PROXIES`` (never from any other peer).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cryptography import x509
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.responses import Response
from starlette.websockets import WebSocketDisconnect

from api.ocpp.framing import check_frame
from api.ocpp.runtime import OcppRuntime, Session, get_runtime
from api.ocpp.station_cp import PREFERENCE, SUBPROTOCOL_VERSION, WebSocketAdapter, make_charge_point
from pki import stations
from pki.errors import Forbidden, PkiError, Unauthorized
from pki.store import ocpp_repo, repo
from pki.store.ocpp_models import OcppStation

log = logging.getLogger("pnc.ocpp")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = get_runtime(app)
    await runtime.start()
    try:
        yield
    finally:
        await runtime.stop()


router = APIRouter(lifespan=lifespan)


def _client_host(ws: WebSocket) -> str:
    return ws.client.host if ws.client else ""


def _is_tls(ws: WebSocket, runtime: OcppRuntime) -> bool:
    if ws.url.scheme == "wss":
        return True
    trusted = _client_host(ws) in runtime.settings.trusted_proxies
    return trusted and ws.headers.get("x-forwarded-proto", "").lower() in ("https", "wss")


def _peer_certificate(ws: WebSocket, runtime: OcppRuntime) -> x509.Certificate | None:
    tls = ws.scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    pem: str | None = chain[0] if chain else None
    if pem is None and _client_host(ws) in runtime.settings.trusted_proxies:
        header = ws.headers.get(runtime.settings.client_cert_header)
        pem = urllib.parse.unquote(header) if header else None
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise Forbidden("client certificate cannot be parsed") from None


def _basic(ws: WebSocket) -> tuple[str | None, str | None]:
    scheme, _, value = ws.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None, None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return (user, password) if sep else (None, None)


def authenticate(ws: WebSocket, runtime: OcppRuntime,
                 station_id: str) -> tuple[OcppStation, x509.Certificate | None]:
    """Blocking (scrypt, database): run in a thread. Returns the station and, for profile 3, the client
    certificate it authenticated with."""
    station = ocpp_repo.get_station(runtime.services.db, station_id)
    if station is None or not station.enabled:
        raise Unauthorized("unknown station")  # same answer as a wrong password: no identity enumeration
    profile = station.security_profile
    if profile >= 2 and not _is_tls(ws, runtime):
        raise Forbidden(f"security profile {profile} requires TLS")
    if profile == 3:
        cert = _peer_certificate(ws, runtime)
        if cert is None:
            raise Unauthorized("security profile 3 requires a TLS client certificate")
        stations.authenticate_client_certificate(runtime.services.authority, station, cert, runtime.core.now())
        return station, cert
    user, password = _basic(ws)
    stations.authenticate_basic(station, user, password)
    return station, None


async def _deny(ws: WebSocket, status: int, reason: str) -> None:
    headers = {"www-authenticate": 'Basic realm="ocpp"'} if status == 401 else {}
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(Response(reason, status_code=status, headers=headers))
    else:  # servers without the denial extension answer a pre-accept close with 403
        await ws.close(code=1008)


@router.websocket("/ocpp/{station_id}")
async def ocpp_endpoint(websocket: WebSocket, station_id: str) -> None:
    runtime = get_runtime(websocket.app)
    offered = websocket.scope.get("subprotocols") or []
    chosen = next((p for p in PREFERENCE if p in offered), None)
    if chosen is None:
        await _deny(websocket, 400, "no supported OCPP subprotocol (ocpp2.1, ocpp2.0.1, ocpp1.6)")
        return
    try:
        station, client_cert = await asyncio.to_thread(authenticate, websocket, runtime, station_id)
    except PkiError as exc:
        await asyncio.to_thread(repo.add_audit, runtime.services.db, repo.audit_event(
            f"station:{station_id}"[:128], "ocpp.connect", "refused", target=station_id[:255],
            details={"reason": exc.code, "peer": _client_host(websocket)}))
        await _deny(websocket, 403 if exc.code == "Forbidden" else 401, exc.message)
        return
    version = SUBPROTOCOL_VERSION[chosen]
    # recorded before accept: commands queued as soon as the station is online validate against its version
    if station.ocpp_version != version:
        await asyncio.to_thread(runtime.core.touch, station_id, runtime.core.now(), ocpp_version=version)
    else:
        await asyncio.to_thread(runtime.core.touch, station_id, runtime.core.now())
    await websocket.accept(subprotocol=chosen)
    connection = WebSocketAdapter(websocket)
    cp = make_charge_point(chosen, station, connection, runtime.core, runtime.notify, runtime.executor,
                           runtime.settings.call_timeout)
    session = Session(station_id, version, cp)
    await runtime.attach(session)
    # SP3: the certificate it authenticated with is now in use (older ones are superseded); open rotation jobs
    # and renewals for this station move on now that it is reachable
    runtime.station_event(station_id, client_cert, connected=True)
    try:
        await serve(websocket, cp, version, runtime.settings.max_frame_bytes)
    finally:
        connection.closed = True
        await runtime.detach(session)


def _unique_id(raw: str) -> str | None:
    try:
        frame = json.loads(raw)
        return str(frame[1])
    except (ValueError, IndexError, TypeError, KeyError):
        return None


async def serve(websocket: WebSocket, cp: Any, version: str, max_bytes: int) -> None:
    """Read frames; answer framing errors ourselves, hand everything else to the package's router."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw: Any = message.get("text")
            if raw is None and message.get("bytes") is not None:
                raw = bytes(message["bytes"])
            error = check_frame(raw, version=version, max_bytes=max_bytes, routes=cp.route_map)
            if error is not None:
                await cp._connection.send(error.to_json())
                continue
            # Station CALLs are handled one at a time (OCPP-J); CALLRESULT/CALLERROR go to the waiting outbox call.
            try:
                await cp.route_message(raw)
            except Exception as exc:  # a bug must cost one CALLERROR, not the station's connection
                log.error("OCPP message handling failed: %s", type(exc).__name__)
                unique_id = _unique_id(raw)
                if unique_id is not None and raw.lstrip().startswith("[2"):
                    await cp._connection.send(json.dumps([4, unique_id, "InternalError", "internal error", {}]))
    except WebSocketDisconnect:
        return  # signing already started keeps running: its CertificateSigned waits in the outbox
