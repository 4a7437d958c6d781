"""Typed domain errors.

Every boundary (HTTP, OCPP, CLI) maps these once: ``code`` is a stable machine-readable reason (it becomes an
OCPP ``statusInfo.reasonCode`` or the problem+json ``type`` suffix), ``message`` is one human line. Messages must
never contain key material; the key store raises its own errors with only the key URI.
"""

from __future__ import annotations


class PkiError(Exception):
    """Base of every error the domain raises on purpose."""

    code: str = "Error"
    status: int = 400  # a hint for HTTP adapters; the domain itself does not speak HTTP

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidRequest(PkiError):
    """The input cannot be parsed or is structurally wrong (garbage PEM, bad hex, ...)."""

    code = "InvalidRequest"


class PolicyViolation(PkiError):
    """A well-formed request that our issuance policy refuses (wrong O/CN/DC, weak key, ...)."""

    code = "PolicyViolation"
    status = 422


class SizeLimitExceeded(PolicyViolation):
    """The certificate would exceed the size its standard allows (800 B for ISO 15118-2, 1600 B for -20)."""

    code = "SizeLimitExceeded"


class NotFound(PkiError):
    code = "NotFound"
    status = 404


class Conflict(PkiError):
    code = "Conflict"
    status = 409


class KeyStoreError(PkiError):
    """A key could not be created, loaded or used. Carries the key URI, never key bytes.

    For a caller this is "cannot sign right now" (an HSM session down, a key file missing or unreadable), not a
    fault in its request nor a crash: adapters answer 503 and the operator finds the URI in the server log."""

    code = "KeyStoreError"
    status = 503


class Unauthorized(PkiError):
    code = "Unauthorized"
    status = 401


class Forbidden(PkiError):
    code = "Forbidden"
    status = 403


class RateLimited(PkiError):
    """Too many requests from one token or station; the caller should back off."""

    code = "RateLimited"
    status = 429


class StorageUnavailable(PkiError):
    """The database refused or lost a write that was needed to issue; nothing of that write was kept.

    Raised where a caller can still use what was done before (a bulk issuance returns the certificates of the
    chunks that committed and this error for the rest), instead of the driver's own exception."""

    code = "StorageUnavailable"
    status = 503
