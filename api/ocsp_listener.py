"""A dedicated OCSP listener: HTTP/1.1 straight on asyncio, no ASGI server in between (``PNC_OCSP_PORT``).

Stations ask for the same pre-signed answers all day; on the ASGI path most of a cached answer's cost is uvicorn's
HTTP machinery (a scope dict, header lists, two ``send`` messages per response, a task per request), not ours. This
listener runs on the application's own event loop and shares its OCSP service (cache, on-demand signing, the
table poller that makes another instance's revocation visible): httptools parses, a cache hit becomes one
``transport.write`` of prebuilt bytes. The HTTP semantics are the ASGI path's (:mod:`api.ocsp_http`): POST and
GET, RFC 5019 cache headers, 304 for a matching ETag, no-store for nonced answers, tryLater past the signing queue,
405/413/415 for misuse, a request id on every answer; only ``/ocsp`` is served here (CRLs and everything else stay on
the main port). Several workers share the port (SO_REUSEPORT); pipelined requests are answered in order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from email.utils import formatdate
from typing import TYPE_CHECKING

import httptools

from api.observability import request_id_var
from api.ocsp_http import (
    NOT_ALLOWED,
    Reply,
    SigningGate,
    answer_reply,
    cached_reply,
    check_post,
    decode_get_path,
    outcome_of,
    plain_reply,
    request_id_of,
)
from api.ocsp_stats import OcspStats
from pki.ocsp import MALFORMED, TRY_LATER, OcspAnswer

if TYPE_CHECKING:
    from api.context import Services

log = logging.getLogger("pnc.ocsp.listener")

_REASONS = {200: b"OK", 304: b"Not Modified", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Content Too Large", 415: b"Unsupported Media Type", 503: b"Service Unavailable"}
_WANTED = {b"content-type", b"content-length", b"if-none-match", b"x-request-id", b"expect"}
_NOT_HERE = plain_reply(404, b"this port serves OCSP only: POST /ocsp or GET /ocsp/{base64}")


class _Date:
    """The HTTP Date header (RFC 9110 §6.6.1), formatted once per second rather than per answer."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def header(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._value


def encode(reply: Reply, request_id: str, date: bytes, close: bool) -> bytes:
    status, headers, body = reply
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"")), date]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts += (b"x-request-id: ", request_id.encode(), b"\r\n")
    if close:
        parts.append(b"connection: close\r\n")
    parts += (b"\r\n", body)
    return b"".join(parts)


class OcspListener:
    """The listening socket(s) and what every connection shares."""

    def __init__(self, services: Services, stats: OcspStats, *, max_body_bytes: int,
                 keep_alive_seconds: float = 15.0) -> None:
        self.services = services
        self.stats = stats
        self.max_body = max_body_bytes
        self.keep_alive = keep_alive_seconds
        self.max_age = services.settings.ocsp_max_age_seconds
        self.gate = SigningGate(lambda: self.services)
        self.date = _Date()
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> None:
        """Bind with SO_REUSEPORT, so every worker process of one instance listens on the same port and the
        kernel spreads connections across them."""
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: _Connection(self), host, port, reuse_port=True,
                                                    backlog=2048)
        except OSError as exc:  # one clear line in the start-up failure, not only errno in a traceback
            raise RuntimeError(f"the OCSP listener cannot listen on {host}:{port} (PNC_OCSP_PORT): "
                               f"{exc.strerror or exc}") from None
        self._sweeper = asyncio.create_task(self._sweep())

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.transport.close()
            await self._server.wait_closed()

    async def _sweep(self) -> None:
        """Close keep-alive connections idle for longer than ``keep_alive`` (a timer per request would cost more)."""
        while True:
            await asyncio.sleep(min(self.keep_alive, 5.0))
            deadline = time.monotonic() - self.keep_alive
            for conn in [c for c in self.connections if c.last_active < deadline and not c.pending]:
                conn.transport.close()


class _Connection(asyncio.Protocol):
    """One client connection: parse with httptools, answer cache hits at once, keep pipelined answers in order."""

    def __init__(self, listener: OcspListener) -> None:
        self.listener = listener
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.pending: deque[tuple[asyncio.Future[bytes] | bytes, bool]] = deque()
        self.last_active = time.monotonic()
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._closing = False

    # --- asyncio.Protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.listener.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connections.discard(self)
        for item, _ in self.pending:
            if isinstance(item, asyncio.Future):
                item.cancel()
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._reply_now(plain_reply(400, b"malformed HTTP request"), "-", close=True)

    def pause_writing(self) -> None:  # the client does not read its answers: stop reading its requests
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    # --- httptools callbacks -----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key in _WANTED:
            self._headers[key] = value

    def on_headers_complete(self) -> None:
        if self._headers.get(b"expect", b"").lower() == b"100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= self.listener.max_body:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closing:
            return
        started = time.perf_counter()
        listener = self.listener
        keep_alive = self.parser.should_keep_alive()
        rid = request_id_of(self._headers.get(b"x-request-id"))
        method = self.parser.get_method()
        path = self._url.split(b"?", 1)[0]
        if not (path == b"/ocsp" or path.startswith(b"/ocsp/")):
            self._reply_now(_NOT_HERE, rid, close=not keep_alive)
            return
        if method == b"POST":
            refused = check_post(self._headers.get(b"content-type"), self._headers.get(b"content-length"),
                                 listener.max_body)
            if refused is None and self._size > listener.max_body:
                refused = plain_reply(413, b"OCSP request too large")
            if refused is not None:
                self._reply_now(refused, rid, close=refused[0] == 413 or not keep_alive)
                listener.stats.observe("rejected", time.perf_counter() - started)
                return
            body = b"".join(self._body)
        elif method == b"GET":
            found = decode_get_path(path)
            if found is None:
                self._reply_now(answer_reply(OcspAnswer(MALFORMED, False), listener.max_age, None), rid,
                                close=not keep_alive)
                listener.stats.observe("error", time.perf_counter() - started)
                return
            body = found
        else:
            self._reply_now(NOT_ALLOWED, rid, close=not keep_alive)
            listener.stats.observe("rejected", time.perf_counter() - started)
            return
        inm = self._headers.get(b"if-none-match")
        hit = listener.services.ocsp.fast(body)
        if hit is not None:
            self._reply_now(cached_reply(hit, listener.max_age, inm), rid, close=not keep_alive)
            listener.stats.observe("cached", time.perf_counter() - started)
            return
        future = asyncio.ensure_future(self._signed(body, inm, rid, not keep_alive, started))
        self.pending.append((future, not keep_alive))
        future.add_done_callback(self._flush)

    # --- answers -----------------------------------------------------------------------------------------

    async def _signed(self, body: bytes, inm: bytes | None, rid: str, close: bool, started: float) -> bytes:
        token = request_id_var.set(rid)
        try:
            answer = await self.listener.gate.respond(body)
        finally:
            request_id_var.reset(token)
        self.listener.stats.observe(outcome_of(answer), time.perf_counter() - started)
        return encode(answer_reply(answer, self.listener.max_age, inm), rid, self.listener.date.header(), close)

    def _reply_now(self, reply: Reply, rid: str, *, close: bool) -> None:
        data = encode(reply, rid, self.listener.date.header(), close)
        if self.pending:  # an earlier pipelined request is still being signed: answer after it
            self.pending.append((data, close))
            return
        self._write(data, close)

    def _write(self, data: bytes, close: bool) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(data)
        if close:
            self._closing = True
            self.transport.close()

    def _flush(self, _: object = None) -> None:
        while self.pending:
            item, close = self.pending[0]
            if isinstance(item, asyncio.Future):
                if not item.done():
                    return
                if item.cancelled():
                    self.pending.clear()
                    return
                exc = item.exception()
                data = item.result() if exc is None else encode(
                    answer_reply(OcspAnswer(TRY_LATER, False), 0, None), "-", self.listener.date.header(), True)
                if exc is not None:
                    log.warning("OCSP answer failed: %s", type(exc).__name__)
                    close = True
            else:
                data = item
            self.pending.popleft()
            self._write(data, close)
            if close:
                self.pending.clear()
                return
