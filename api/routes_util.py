"""Flatten the app's routes (FastAPI includes routers lazily), for the auth matrix test and the docs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi.routing import APIRoute, APIWebSocketRoute


def iter_routes(routes: Sequence[Any], prefix: str = "") -> Iterator[tuple[str, set[str], Any]]:
    """Yield ``(path, methods, route)`` for every HTTP and WebSocket route, following included routers."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            context = getattr(route, "include_context", None)
            yield from iter_routes(original.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(route, APIRoute):
            yield prefix + route.path, set(route.methods), route
        elif isinstance(route, APIWebSocketRoute):
            yield prefix + route.path, {"WEBSOCKET"}, route
