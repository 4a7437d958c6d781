"""Logging for background loops that retry forever (outbox tick, expiry watch).

When the database is down such a loop fails on every pass; a full traceback each 0.2 s buries the one line an
operator needs and costs CPU while the service should be serving OCSP from memory. So: the first failure of a kind
is logged with its traceback, repeats of the same kind as one line at most every ``every_s`` seconds (with the
count), and the first success after failures says that the loop recovered.
"""

from __future__ import annotations

import logging
import time


class RepeatedFailureLog:
    """Per-loop failure state; not thread-safe (each loop owns one)."""

    def __init__(self, logger: logging.Logger, what: str, every_s: float = 60.0) -> None:
        self.logger = logger
        self.what = what
        self.every_s = every_s
        self._kind: str | None = None
        self._count = 0
        self._last_line = 0.0

    def failed(self, exc: BaseException) -> None:
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        now = time.monotonic()
        self._count += 1
        if kind != self._kind:
            self._kind = kind
            self._last_line = now
            self.logger.error("%s failed", self.what, exc_info=exc)
        elif now - self._last_line >= self.every_s:
            self._last_line = now
            self.logger.error("%s still failing (%d times so far): %s", self.what, self._count, type(exc).__name__)

    def ok(self) -> None:
        if self._kind is not None:
            self.logger.warning("%s recovered after %d failed passes", self.what, self._count)
            self._kind = None
            self._count = 0
