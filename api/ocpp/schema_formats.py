"""Make the `ocpp` package's JSON-schema validation check ``"format"`` too (RFC 3339 ``date-time``, ``uri``).

The package validates every frame against the official OCPP schemas, but builds its ``Draft4Validator``s without
a format checker, so ``"timestamp": "yesterday"`` passes although the schema says ``"format": "date-time"`` (OCPP
2.0.1 Part 2 §2.1.2 / OCPP-J: dateTime is RFC 3339). We keep the package's schemas, its cache and its mapping of
schema errors to CALLERRORs (a format error becomes FormatViolation / 1.6 FormationViolation, like the package's
other non-type violations) and only hand it validators that carry jsonschema's own format checker; ``date-time``
needs the ``rfc3339-validator`` package, which :func:`install` insists on (jsonschema skips a format it cannot
check, silently).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jsonschema import Draft4Validator

_FORMATS = Draft4Validator.FORMAT_CHECKER
_installed = False


def install() -> None:
    """Idempotent; call before the first frame is validated (api.ocpp imports it)."""
    global _installed
    if _installed:
        return
    if "date-time" not in _FORMATS.checkers:
        raise RuntimeError("rfc3339-validator is not installed: OCPP date-time fields would go unchecked")
    from ocpp import messages

    original: Callable[..., Draft4Validator] = messages.get_validator
    # Keyed by what selects the schema, never by id() of the package's validator: two threads validating the same
    # message type for the first time each build one, the package keeps the later, the earlier is freed and its id
    # can come back as another schema's validator — a Get15118EVCertificate response was then checked against the
    # request's schema (a flaky CI failure, 3 tests at once).
    checked: dict[tuple[int, str, str, Callable[..., Any]], Draft4Validator] = {}

    def get_validator(message_type_id: int, action: str, ocpp_version: str, parse_float: Callable[..., Any] = float,
                      ) -> Draft4Validator:
        key = (int(message_type_id), action, ocpp_version, parse_float)
        validator = checked.get(key)
        if validator is None:
            base = original(message_type_id, action, ocpp_version, parse_float)
            validator = checked.setdefault(key, Draft4Validator(base.schema, format_checker=_FORMATS))
        return validator

    messages.get_validator = get_validator
    _installed = True


def get_validator(message_type_id: int, action: str, ocpp_version: str) -> Draft4Validator:
    """The format-checking validator for our own checks (payloads we queue, 1.6 DataTransfer contents)."""
    install()
    from ocpp import messages

    validator: Draft4Validator = messages.get_validator(message_type_id, action, ocpp_version)
    return validator
