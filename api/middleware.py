"""Hostile-input limits for every HTTP request, as plain ASGI middleware (so they apply to every route, including
those other modules add): a body-size cap (413 problem+json, checked on Content-Length and again while reading, so
chunked uploads cannot evade it) and a request timeout (504). WebSocket frame sizes are capped by the server
(``ws_max_size``) and rate limits live in the authentication dependency and the OCPP server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _problem(send: Send, status: int, title: str, detail: str, code: str) -> None:
    body = json.dumps({"type": f"urn:pnc:problem:{code}", "title": title, "status": status, "detail": detail,
                       "code": code}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, timeout_seconds: float,
                 path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = path_limits or {}  # exact paths that take larger bodies (bulk issuance)
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.max_body_bytes)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _problem(send, 400, "Invalid request", "bad Content-Length", "InvalidRequest")
                    return
                if declared > limit:
                    await _problem(send, 413, "Request too large", f"the body exceeds {limit} bytes",
                                   "PayloadTooLarge")
                    return
        # Read the (bounded) body up front: a chunked upload that grows past the limit is refused before any
        # handler sees it, whatever the handler's own error handling would make of a failed read.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            body += message.get("body", b"")
            if len(body) > limit:
                await _problem(send, 413, "Request too large", f"the body exceeds {limit} bytes", "PayloadTooLarge")
                return
            if not message.get("more_body", False):
                break
        replayed = False
        started = False

        async def replay_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, replay_receive, tracking_send), self.timeout_seconds)
        except TimeoutError:
            if not started:
                await _problem(send, 504, "Timeout", f"the request took longer than {self.timeout_seconds:g} s",
                               "Timeout")
