"""Typed errors of the EXI codec, part of the domain error hierarchy (``pki.errors.PkiError``)."""

from __future__ import annotations

from pki.errors import InvalidRequest


class ExiBaseError(InvalidRequest):
    """Base of the codec's errors: a malformed or unsupported EXI stream is the caller's input problem."""

    code = "ExiError"


class ExiError(ExiBaseError):
    """An EXI stream or document the codec cannot process.

    ``bit_position`` is the offset in the EXI body (including the header) where decoding failed, or
    the number of bits written so far when encoding failed; ``reason`` says what was wrong and
    ``path`` is the element path (``V2G_Message/Body/...``) where known.
    """

    def __init__(self, reason: str, bit_position: int | None = None, path: str = "") -> None:
        self.reason = reason
        self.bit_position = bit_position
        self.path = path
        where = f" at bit {bit_position}" if bit_position is not None else ""
        inside = f" in {path}" if path else ""
        super().__init__(f"{reason}{where}{inside}")
