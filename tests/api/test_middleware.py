"""The limits middleware on its own: 413 before the app sees an oversized body, 504 on a hung handler."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from api.middleware import LimitsMiddleware


async def _hung(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.Event().wait()  # never set: a handler that hangs


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    msg = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": msg.get("body", b"")})


def _call(app: Any, body: bytes) -> httpx.Response:
    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.post("/x", content=body)

    return asyncio.run(run())


def test_timeout_answers_504() -> None:
    r = _call(LimitsMiddleware(_hung, max_body_bytes=100, timeout_seconds=0.05), b"")
    assert r.status_code == 504 and r.json()["code"] == "Timeout"


@pytest.mark.parametrize(("size", "status"), [(100, 200), (101, 413)])
def test_body_limit_boundary(size: int, status: int) -> None:
    r = _call(LimitsMiddleware(_echo, max_body_bytes=100, timeout_seconds=5), b"x" * size)
    assert r.status_code == status
    if status == 200:
        assert r.content == b"x" * size
