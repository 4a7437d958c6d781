"""The operator console: a static single-page app served at ``/console``.

The shell (HTML, CSS, JS, icon) carries no data and is public, like ``/docs``; every piece of data it shows comes
from the authenticated REST API, called by the browser with the operator's API token as a Bearer header. The token
lives only in the tab's ``sessionStorage`` (never a cookie, so no CSRF surface). The files are vanilla HTML/CSS/JS
with no build step and no external resource; a strict Content-Security-Policy (``'self'`` only, no inline script)
keeps it that way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from pki.errors import NotFound

STATIC = Path(__file__).parent / "static"
INDEX = "index.html"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",  # revalidate by ETag: an upgrade shows at once, unchanged files cost a 304
}
PUBLIC_PATHS = frozenset({"/console", "/console/", "/console/{asset}"})
"""Routes of this module; public because they serve only the data-free shell (the auth-matrix test lists them)."""

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """The shipped files, read once: an explicit allow-list, so no request path ever reaches the file system."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC.iterdir()):
        if path.is_file() and path.suffix in _TYPES:
            body = path.read_bytes()
            found[path.name] = Asset(body, _TYPES[path.suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found


def _serve(name: str, request: Request) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise NotFound(f"no console file {name!r}")
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/console")
def console_index(request: Request) -> Response:
    return _serve(INDEX, request)


@router.get("/console/")
def console_slash() -> RedirectResponse:
    return RedirectResponse("/console", status_code=308)


@router.get("/console/{asset}")
def console_asset(asset: str, request: Request) -> Response:
    return _serve(asset, request)
