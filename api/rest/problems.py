"""RFC 9457 problem+json for every error: domain errors, validation errors, unknown routes, and crashes."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pki.errors import PkiError

log = logging.getLogger("pnc.api")
PROBLEM = "application/problem+json"


def problem_body(status: int, title: str, detail: str, code: str) -> dict[str, object]:
    return {"type": f"urn:pnc:problem:{code}", "title": title, "status": status, "detail": detail, "code": code}


def problem(status: int, title: str, detail: str, code: str, **extra: object) -> JSONResponse:
    body = problem_body(status, title, detail, code)
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def problem_of(exc: PkiError) -> dict[str, object]:
    """The problem a domain error becomes (also one item's outcome inside a bulk answer)."""
    if exc.status == 503:
        return problem_body(503, "Service unavailable", exc.message, exc.code)
    status = exc.status if exc.status < 500 else 500
    return problem_body(status, "Request refused" if status < 500 else "Internal error", exc.message, exc.code)


def install(app: FastAPI) -> None:
    @app.exception_handler(PkiError)
    async def _pki(_: Request, exc: PkiError) -> JSONResponse:
        body = problem_of(exc)
        response = JSONResponse(body, status_code=int(str(body["status"])), media_type=PROBLEM)
        if exc.status == 503:  # the service cannot do it now (key store): retryable, and worth an operator's look
            log.warning("service unavailable: %s: %s", exc.code, exc.message)
            response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return problem(422, "Invalid request", "the request does not match the schema", "ValidationError",
                       errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail), f"Http{exc.status_code}",
                       ) if not isinstance(exc.detail, dict) else problem(exc.status_code, "Error", str(exc.detail),
                                                                         f"Http{exc.status_code}")

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        # The database is down or restarting: a retryable 503, not a crash. Details stay in the server log only.
        log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else type(exc).__name__)
        response = problem(503, "Service unavailable", "the database is unavailable; retry shortly",
                           "DatabaseUnavailable")
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # An id, offset or limit beyond what the database's integer columns hold (found by fuzzing).
        return problem(400, "Request refused", "a number in the request is out of range", "OutOfRange")

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", type(exc).__name__)  # no message: it could carry input data
        return problem(500, "Internal error", "an unexpected error occurred", "InternalError")
