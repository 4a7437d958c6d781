"""Parsing, normalisation and check digits for the identifiers that end up in Plug & Charge certificates.

Why this module exists: a contract certificate's CN is an EMAID, an ISO 15118-20 SECC leaf's CN is a
SECC ID, an OEM provisioning certificate's CN is a PCID, and EVSE IDs identify charging points.  A PKI
that signs whatever string it is handed will happily issue certificates that no station or EV can match,
so every identifier is validated here *before* it reaches a certificate, and every rejection says exactly
what is wrong, where, and what was expected (the message goes straight back to an operator or API client).

Conventions shared by all parsers:

* Input is case-insensitive; ``.normalized`` is upper case with the optional field separators removed.
  That is the form Hubject normalises EMAIDs to and the form EVerest compares against, and it never
  exceeds the length limits of the text it came from (re-inserting separators could), so
  ``parse_x(x.normalized) == x`` always holds.  ``.display`` re-inserts the canonical separators for
  humans where the standards show them.
* Positions in error messages are 1-based indexes into the text exactly as it was given.
* Leading/trailing whitespace is *not* stripped: a CN with a stray space is a different CN.
* Only ASCII letters and digits count as alphanumeric (``str.isalnum`` alone would accept e.g. Arabic digits).

Sources: ISO 15118-2:2014 Annex H and ISO 15118-20 ABNF as reproduced by Hubject OPCP
``05_handling-of-ids.md``; the eMI3/ISO check-digit algorithm and its test vectors and the DIN SPEC 91286
check digit as summarised in ``docs/standards.md`` §2.4 and §4.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "EMAID_SEPARATOR",
    "EVSE_ID_SEPARATOR",
    "SECC_ID_SEPARATOR",
    "Emaid",
    "EvseId",
    "IdentifierError",
    "Pcid",
    "RandomChoice",
    "SeccId",
    "din_check_digit",
    "emaid_check_digit",
    "generate_emaid",
    "new_emaid",
    "parse_country_code",
    "parse_emaid",
    "parse_evse_id",
    "parse_pcid",
    "parse_secc_id",
]


class IdentifierError(ValueError):
    """An identifier is malformed; ``str(err)`` is a complete, human-readable explanation.

    A ``ValueError`` because the caller passed a value of the right type with the wrong content.  The
    message always names the identifier kind and the offending input, then what is wrong (position and
    character where one exists) and what was expected, so it can be shown to an operator unchanged.
    """


# --------------------------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------------------------

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Value order used by both check-digit algorithms: '0'..'9' -> 0..9, 'A'..'Z' -> 10..35."""
_VALUE: Final = {ch: i for i, ch in enumerate(_ALPHABET)}

EMAID_SEPARATOR: Final = "-"
EVSE_ID_SEPARATOR: Final = "*"
SECC_ID_SEPARATOR: Final = "-"


def _is_alnum(ch: str) -> bool:
    """ASCII letter or digit only; the standards' <alphanumeric> is ASCII, ``str.isalnum`` is Unicode."""
    return ch.isascii() and ch.isalnum()


def _is_alpha(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def decimal_id(text: str, *, max_digits: int | None = None) -> int | None:
    """``text`` as a number when it is ASCII digits only (at most ``max_digits`` of them), else None.

    For operator input that may be a record id or something else (a fingerprint prefix, a hex serial):
    ``str.isdigit`` alone is also true for '¹' or '٣', which ``int`` refuses or reads as a digit nobody typed."""
    if not text or not (text.isascii() and text.isdigit()) or (max_digits is not None and len(text) > max_digits):
        return None
    return int(text)


def _fail(kind: str, text: str, detail: str) -> IdentifierError:
    return IdentifierError(f"{kind} {text!r}: {detail}")


def _check_charset(kind: str, text: str, separators: str, expected: str) -> None:
    """Reject the first character that can never occur in this identifier, with its position."""
    for pos, ch in enumerate(text, start=1):
        if not (_is_alnum(ch) or ch in separators):
            raise _fail(kind, text, f"character {ch!r} at position {pos} is not allowed; expected {expected}")


def _chars(n: int) -> str:
    return f"{n} character" if n == 1 else f"{n} characters"


def _check_field(
    kind: str, text: str, field: str, value: str, positions: Sequence[int], letters_only: bool
) -> None:
    """Check every character of a fixed field; ``positions`` maps field index -> 1-based input position."""
    prefix = f"{field}: " if field else ""
    for ch, pos in zip(value, positions, strict=True):
        if letters_only and not _is_alpha(ch):
            raise _fail(
                kind, text, f"{prefix}character {ch!r} at position {pos} is not a letter; expected A-Z"
            )
        if not _is_alnum(ch):
            raise _fail(
                kind,
                text,
                f"{prefix}character {ch!r} at position {pos} is not a letter or digit; expected A-Z or 0-9",
            )


def _check_plain_field(label: str, value: str, length: int, letters_only: bool) -> str:
    """Validate one stand-alone field (no separators allowed) and return it upper-cased."""
    if not isinstance(value, str):
        raise TypeError(f"{label} must be str, not {type(value).__name__}")
    what = "letters A-Z" if letters_only else "letters A-Z or digits 0-9"
    if len(value) != length:
        raise _fail(label, value, f"{_chars(len(value))}, expected {length} {what}")
    _check_field(label, value, "", value, range(1, length + 1), letters_only)
    return value.upper()


def parse_country_code(text: str) -> str:
    """Validate a country code (exactly 2 letters A-Z, any case) and return it upper case.

    Deliberately no ISO 3166-1 membership test: the identifier ABNFs only require two letters, code lists
    change, and test IDs use codes such as ``NN``.  A full list would reject real-world IDs for no gain.
    """
    return _check_plain_field("country code", text, 2, letters_only=True)


# --------------------------------------------------------------------------------------------------------
# ISO 15118-2 Annex H / eMI3 EMAID check digit
# --------------------------------------------------------------------------------------------------------
# Each character value v (0..35) is split into q = v div 9 (two bits, over Z2) and r = v mod 9 (two ternary
# digits, over Z3).  A 15-character EMAID is valid when  sum_i P1^i q_i = 0 (mod 2)  and
# sum_i P2^i r_i = 0 (mod 3)  for i = 1..15.  The check digit is the unique character that makes both sums
# vanish.  2x2 matrices are stored row-major as (a, b, c, d) = [[a, b], [c, d]].

_Mat = tuple[int, int, int, int]
_Vec = tuple[int, int]

_P1: Final[_Mat] = (0, 1, 1, 1)  # over Z2, period 3
_P2: Final[_Mat] = (0, 1, 1, 2)  # over Z3, period 8


def _mat_mul(x: _Mat, y: _Mat, mod: int) -> _Mat:
    a, b, c, d = x
    e, f, g, h = y
    return ((a * e + b * g) % mod, (a * f + b * h) % mod, (c * e + d * g) % mod, (c * f + d * h) % mod)


def _mat_vec(m: _Mat, v: _Vec, mod: int) -> _Vec:
    return ((m[0] * v[0] + m[1] * v[1]) % mod, (m[2] * v[0] + m[3] * v[1]) % mod)


def _powers(m: _Mat, mod: int, count: int) -> tuple[_Mat, ...]:
    """m^1 .. m^count, precomputed once so the per-character work is a table lookup."""
    out = [m]
    while len(out) < count:
        out.append(_mat_mul(out[-1], m, mod))
    return tuple(out)


_P1_POW: Final = _powers(_P1, 2, 15)
_P2_POW: Final = _powers(_P2, 3, 15)


def _split(value: int) -> tuple[_Vec, _Vec]:
    q, r = divmod(value, 9)
    return (q // 2, q % 2), (r // 3, r % 3)


def _contribution(ch: str, position: int) -> tuple[_Vec, _Vec]:
    """(P1^i q, P2^i r) for the character at 1-based ``position``."""
    q, r = _split(_VALUE[ch])
    return _mat_vec(_P1_POW[position - 1], q, 2), _mat_vec(_P2_POW[position - 1], r, 3)


# The 36 possible contributions of a check character at position 15 are pairwise distinct (P1^15 and P2^15
# are invertible and v -> (q, r) is a bijection), so the check digit is a plain table lookup.
_CHECK_BY_CONTRIBUTION: Final = {_contribution(ch, 15): ch for ch in _ALPHABET}
assert len(_CHECK_BY_CONTRIBUTION) == len(_ALPHABET)


def emaid_check_digit(fourteen: str) -> str:
    """Return the ISO 15118-2 Annex H (eMI3) check digit for a 14-character EMAID without separators.

    Input is case-insensitive; the result is one character of ``0-9A-Z``.  Why this algorithm and not a
    simple mod-N sum: its two independent matrix sums (over Z2 and Z3, with invertible weights whose
    pairwise differences at adjacent positions are invertible too) detect every single-character
    substitution and every transposition of two adjacent different characters.  Only the alphabet is checked
    here (country letters etc. are :func:`parse_emaid`'s job), so the function also serves raw look-ups.

    >>> emaid_check_digit("DE8AA001234567")
    '0'
    """
    kind = "EMAID"
    if not isinstance(fourteen, str):
        raise TypeError(f"EMAID must be str, not {type(fourteen).__name__}")
    _check_charset(kind, fourteen, "", "letters A-Z or digits 0-9 (no separators)")
    if len(fourteen) != 14:
        raise _fail(kind, fourteen, f"{_chars(len(fourteen))}, expected 14 (the EMAID without check digit)")
    q_sum: _Vec = (0, 0)
    r_sum: _Vec = (0, 0)
    for pos, ch in enumerate(fourteen.upper(), start=1):
        q, r = _contribution(ch, pos)
        q_sum = ((q_sum[0] + q[0]) % 2, (q_sum[1] + q[1]) % 2)
        r_sum = ((r_sum[0] + r[0]) % 3, (r_sum[1] + r[1]) % 3)
    needed = ((-q_sum[0]) % 2, (-q_sum[1]) % 2), ((-r_sum[0]) % 3, (-r_sum[1]) % 3)
    return _CHECK_BY_CONTRIBUTION[needed]


# --------------------------------------------------------------------------------------------------------
# DIN SPEC 91286 EVCO-ID check digit (a different, older algorithm; never use it for ISO EMAIDs)
# --------------------------------------------------------------------------------------------------------


def din_check_digit(eleven: str) -> str:
    """Return the DIN SPEC 91286 (EVCO-ID) check digit for country + provider + 6-character instance.

    Kept apart from :func:`emaid_check_digit` because the two are routinely confused: DIN IDs have a
    6-character instance and a mod-11 check digit (``0-9`` or ``X``), ISO/eMI3 EMAIDs a 9-character instance
    and a matrix check character (``0-9A-Z``).  Algorithm: characters take values 0..35; a digit counts
    once with weight 2^k, a letter contributes its two decimal digits (tens, units) with weights 2^k and
    2^(k+1); k advances by the number of digits used; the sum mod 11 is the check digit, 10 -> ``X``.
    Unlike the ISO algorithm it does not detect every single substitution (weights repeat mod 11 and letters
    shift the weights of everything after them), which is one reason ISO replaced it.

    ``eleven`` is the 11-character EVCO-ID without separators and without check digit, any case.
    """
    kind = "DIN EVCO-ID"
    if not isinstance(eleven, str):
        raise TypeError(f"DIN EVCO-ID must be str, not {type(eleven).__name__}")
    _check_charset(kind, eleven, "", "letters A-Z or digits 0-9 (no separators)")
    if len(eleven) != 11:
        raise _fail(
            kind,
            eleven,
            f"{_chars(len(eleven))}, expected 11 (country 2 + provider 3 + instance 6, no check digit)",
        )
    _check_field(kind, eleven, "country code", eleven[:2], (1, 2), letters_only=True)
    total = 0
    exponent = 0
    for ch in eleven.upper():
        value = _VALUE[ch]
        digits = (value,) if value < 10 else divmod(value, 10)
        for digit in digits:
            total += digit << exponent
            exponent += 1
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


# --------------------------------------------------------------------------------------------------------
# EMAID
# --------------------------------------------------------------------------------------------------------

_EMAID_BOUNDARIES: Final = (2, 5, 14)  # separator may stand before these indexes of the compact form


@dataclass(frozen=True, slots=True)
class Emaid:
    """A syntactically valid EMAID (ISO 15118-2 Annex H), stored upper case without separators.

    ``check_digit`` is ``None`` when the input had only 14 characters; when present it has been verified.
    Build instances with :func:`parse_emaid` or :func:`generate_emaid`; the constructor does not validate.
    """

    country: str
    provider: str
    instance: str
    check_digit: str | None

    @property
    def normalized(self) -> str:
        """Upper case, no separators: 15 characters with a check digit, 14 without (Hubject's form)."""
        return f"{self.country}{self.provider}{self.instance}{self.check_digit or ''}"

    @property
    def display(self) -> str:
        """Hyphenated form ``CC-PPP-IIIIIIIII-C`` for humans; never put it in a certificate (-2 allows 15)."""
        parts = [self.country, self.provider, self.instance]
        if self.check_digit is not None:
            parts.append(self.check_digit)
        return EMAID_SEPARATOR.join(parts)

    def with_check_digit(self) -> str:
        """The 15-character normalized form, computing the check digit if the input lacked one."""
        body = f"{self.country}{self.provider}{self.instance}"
        return body + (self.check_digit or emaid_check_digit(body))

    def __str__(self) -> str:
        return self.normalized


def parse_emaid(text: str, *, require_check_digit: bool = False) -> Emaid:
    """Parse an EMAID ``<CC 2 letters><S><provider 3><S><instance 9><S><check digit 1>``, S = optional '-'.

    Accepts 14 (no check digit) or 15 characters once the separators are removed, any case; each
    separator independently optional (ISO ABNF), but only between fields and never doubled.  A present
    check digit is always verified; pass ``require_check_digit=True`` where the ID must be complete (for
    example a contract certificate CN, since the EV and SECC exchange the 15-character form).

    >>> parse_emaid("de-8aa-001234567-0").normalized
    'DE8AA0012345670'
    """
    kind = "EMAID"
    if not isinstance(text, str):
        raise TypeError(f"EMAID must be str, not {type(text).__name__}")
    _check_charset(kind, text, EMAID_SEPARATOR, "letters A-Z, digits 0-9 or '-' separators")
    compact: list[str] = []
    positions: list[int] = []
    separators: list[tuple[int, int]] = []  # (index in compact form it precedes, 1-based position)
    for pos, ch in enumerate(text, start=1):
        if ch == EMAID_SEPARATOR:
            separators.append((len(compact), pos))
        else:
            compact.append(ch.upper())
            positions.append(pos)
    n = len(compact)
    if n not in (14, 15):
        raise _fail(
            kind,
            text,
            f"{_chars(n)} without separators, expected 14 (without check digit) or 15 (with check digit)",
        )
    if n == 14 and require_check_digit:
        raise _fail(kind, text, "check digit missing: 14 characters without separators, expected 15")
    seen: set[int] = set()
    for index, pos in separators:
        if index in seen:
            raise _fail(kind, text, f"separator '-' at position {pos} directly follows another separator")
        if index not in _EMAID_BOUNDARIES or index >= n:
            raise _fail(
                kind,
                text,
                f"separator '-' at position {pos} is misplaced; separators may only stand between "
                "country code (2), provider ID (3), eMA instance (9) and check digit (1)",
            )
        seen.add(index)
    country_as_given = text[positions[0] - 1] + text[positions[1] - 1]
    _check_field(kind, text, "country code", country_as_given, positions[:2], letters_only=True)
    value = "".join(compact)
    emaid = Emaid(value[:2], value[2:5], value[5:14], value[14] if n == 15 else None)
    if emaid.check_digit is not None:
        expected = emaid_check_digit(value[:14])
        if emaid.check_digit != expected:
            given = text[positions[14] - 1]
            raise _fail(kind, text, f"check digit {given!r} is wrong, expected {expected!r}")
    return emaid


def generate_emaid(country: str, provider: str, instance: str) -> str:
    """Assemble a 15-character EMAID (upper case, no separators) with its ISO check digit.

    The fields are validated one by one so that an error names the field at fault; lower case is accepted
    and upper-cased because everything downstream compares upper case.
    """
    cc = parse_country_code(country)
    pid = _check_plain_field("EMAID provider ID", provider, 3, letters_only=False)
    inst = _check_plain_field("EMAID eMA instance", instance, 9, letters_only=False)
    body = cc + pid + inst
    return body + emaid_check_digit(body)


class RandomChoice(Protocol):
    """Anything with ``choice`` over a sequence, e.g. the :mod:`secrets` module or a ``random.Random``."""

    def choice(self, seq: Sequence[str], /) -> str: ...


_SEQUENCE_LIMIT: Final = 10**9


def new_emaid(
    country: str, provider: str, *, rng: RandomChoice = secrets, sequence: int | None = None
) -> str:
    """Create a fresh 15-character EMAID for an eMSP's provider ID.

    * Without ``sequence``: 9 random characters from ``0-9A-Z`` drawn from ``rng`` (default
      :mod:`secrets`, because predictable contract IDs make enumeration of other drivers' contracts easy).
      That is about 46.5 bits: collisions become likely (birthday bound) around 10^7 IDs per provider, so
      the caller **must** still enforce uniqueness (database unique constraint, retry on conflict).
    * With ``sequence`` (0 <= n < 10^9): the instance is ``n`` as 9 zero-padded decimal digits, for
      operators who number contracts; uniqueness then follows from the counter.

    Pass a seeded ``random.Random`` as ``rng`` only in tests.
    """
    if sequence is None:
        instance = "".join(rng.choice(_ALPHABET) for _ in range(9))
    else:
        if isinstance(sequence, bool) or not isinstance(sequence, int):
            raise TypeError(f"sequence must be int, not {type(sequence).__name__}")
        if not 0 <= sequence < _SEQUENCE_LIMIT:
            raise IdentifierError(
                f"EMAID sequence {sequence}: out of range, expected 0 to {_SEQUENCE_LIMIT - 1}"
            )
        instance = f"{sequence:09d}"
    return generate_emaid(country, provider, instance)


# --------------------------------------------------------------------------------------------------------
# EVSE ID (ISO 15118-2 Annex H)
# --------------------------------------------------------------------------------------------------------


class _Cursor:
    """Left-to-right reader used by the variable-length EVSE/SECC parsers to keep positions exact."""

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text
        self.index = 0

    def fail(self, detail: str) -> IdentifierError:
        return _fail(self.kind, self.text, detail)

    def skip_optional(self, separator: str) -> None:
        if self.index < len(self.text) and self.text[self.index] == separator:
            self.index += 1

    def take(self, field: str, length: int, letters_only: bool) -> str:
        chunk = self.text[self.index : self.index + length]
        if len(chunk) < length:
            raise self.fail(
                f"{field} is cut short: expected {length} characters from position {self.index + 1}"
            )
        _check_field(
            self.kind, self.text, field, chunk, range(self.index + 1, self.index + length + 1), letters_only
        )
        self.index += length
        return chunk.upper()

    def literal(self, field: str, expected: str) -> None:
        if self.index >= len(self.text):
            raise self.fail(f"{field} missing at position {self.index + 1}; expected {expected!r}")
        ch = self.text[self.index]
        if ch.upper() != expected:
            raise self.fail(f"{field}: character {ch!r} at position {self.index + 1}, expected {expected!r}")
        self.index += 1


@dataclass(frozen=True, slots=True)
class EvseId:
    """A syntactically valid EVSE ID, upper case.

    ``power_outlet_id`` keeps any '*' it contained: in the Annex H ABNF those separators belong to the
    outlet ID element itself, so dropping them could merge two IDs the operator considers distinct.
    """

    country: str
    operator_id: str
    power_outlet_id: str

    @property
    def normalized(self) -> str:
        """Upper case without the two optional field separators, e.g. ``DEICEE45B*78C``."""
        return f"{self.country}{self.operator_id}E{self.power_outlet_id}"

    @property
    def display(self) -> str:
        """Canonical starred form ``DE*ICE*E45B*78C``; may be 2 characters longer than the 37 allowed."""
        return f"{self.country}*{self.operator_id}*E{self.power_outlet_id}"

    def __str__(self) -> str:
        return self.normalized


def parse_evse_id(text: str) -> EvseId:
    """Parse ``<CC 2 letters><S><operator ID 3><S>E<power outlet ID 1..31>``, S = optional '*'.

    Total length 7..37 characters as given (ISO 15118-2 XSD ``evseIDType``).  The power outlet ID is
    letters, digits and '*', starting with a letter or digit (Annex H: ``<alphanumeric> *30(<alphanumeric>
    / <S>)``).  Case-insensitive: the ``E`` may be lower case too.  Underscores, which Hubject's ``\\w``
    regex would let through, are rejected because the ISO alphabet has none.
    """
    kind = "EVSEID"
    if not isinstance(text, str):
        raise TypeError(f"EVSEID must be str, not {type(text).__name__}")
    _check_charset(kind, text, EVSE_ID_SEPARATOR, "letters A-Z, digits 0-9 or '*'")
    if not 7 <= len(text) <= 37:
        raise _fail(kind, text, f"{_chars(len(text))}, expected 7 to 37")
    cur = _Cursor(kind, text)
    country = cur.take("country code", 2, letters_only=True)
    cur.skip_optional(EVSE_ID_SEPARATOR)
    operator = cur.take("EVSE operator ID", 3, letters_only=False)
    cur.skip_optional(EVSE_ID_SEPARATOR)
    cur.literal("ID type", "E")
    outlet = text[cur.index :]
    if not outlet:
        raise cur.fail(f"power outlet ID missing after 'E' at position {cur.index}")
    if not _is_alnum(outlet[0]):
        raise cur.fail(
            f"power outlet ID must start with a letter or digit, "
            f"found {outlet[0]!r} at position {cur.index + 1}"
        )
    if len(outlet) > 31:
        raise cur.fail(f"power outlet ID is {_chars(len(outlet))}, expected 1 to 31")
    return EvseId(country, operator, outlet.upper())


# --------------------------------------------------------------------------------------------------------
# SECC ID (ISO 15118-20)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeccId:
    """A syntactically valid ISO 15118-20 SECC ID, upper case.

    ``check_digit`` is recorded but **not verified**: the SECC ID check-digit algorithm is not given in
    our sources (docs/standards.md §2.4), and guessing one (e.g. reusing the EMAID algorithm) would reject
    valid IDs.  Only the syntax is validated.
    """

    country: str
    operator_id: str
    controller_id: str
    check_digit: str

    @property
    def normalized(self) -> str:
        """Upper case without separators; always within the 39..64 limit of its source text."""
        return f"{self.country}{self.operator_id}S{self.controller_id}{self.check_digit}"

    @property
    def display(self) -> str:
        """Hyphenated form ``DE-ICE-S-<controller>-2`` as in the standard's example; may exceed 64 chars."""
        return f"{self.country}-{self.operator_id}-S-{self.controller_id}-{self.check_digit}"

    def __str__(self) -> str:
        return self.normalized


def parse_secc_id(text: str) -> SeccId:
    """Parse ``<CC><S><operator 3><S>S<S><controller ID 32..248><S><check digit>``, S = optional '-'.

    Total length 39..64 characters as given (Hubject, from ISO 15118-20), which in practice caps the
    controller ID at 57 characters even though the ABNF allows 248.  The last character is the check digit;
    it is syntax-checked only, because the algorithm is not stated in the sources we have (see
    :class:`SeccId`).  Case-insensitive.
    """
    kind = "SECC ID"
    if not isinstance(text, str):
        raise TypeError(f"SECC ID must be str, not {type(text).__name__}")
    _check_charset(kind, text, SECC_ID_SEPARATOR, "letters A-Z, digits 0-9 or '-' separators")
    if not 39 <= len(text) <= 64:
        raise _fail(kind, text, f"{_chars(len(text))}, expected 39 to 64")
    cur = _Cursor(kind, text)
    country = cur.take("country code", 2, letters_only=True)
    cur.skip_optional(SECC_ID_SEPARATOR)
    operator = cur.take("EVSE operator ID", 3, letters_only=False)
    cur.skip_optional(SECC_ID_SEPARATOR)
    cur.literal("ID type", "S")
    cur.skip_optional(SECC_ID_SEPARATOR)
    last = len(text) - 1
    if text[last] == SECC_ID_SEPARATOR:
        raise cur.fail(f"ends with separator '-' at position {last + 1}; expected a check digit")
    end = last - 1 if text[last - 1] == SECC_ID_SEPARATOR else last
    controller = text[cur.index : end]
    for offset, ch in enumerate(controller):
        if not _is_alnum(ch):
            raise cur.fail(
                f"controller ID: character {ch!r} at position {cur.index + offset + 1} "
                "is not a letter or digit; expected A-Z or 0-9"
            )
    if not 32 <= len(controller) <= 248:
        raise cur.fail(f"controller ID is {_chars(len(controller))}, expected 32 to 248")
    return SeccId(country, operator, controller.upper(), text[last].upper())


# --------------------------------------------------------------------------------------------------------
# PCID (VDE-AR-E 2802-100-1)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pcid:
    """A provisioning certificate ID: WMI (3) + OEM-unique part (14) + optional check character.

    The check character is recorded, not verified: its algorithm is not in our sources.
    """

    wmi: str
    vehicle_id: str
    check_char: str | None

    @property
    def normalized(self) -> str:
        """Upper case, 17 or 18 characters."""
        return f"{self.wmi}{self.vehicle_id}{self.check_char or ''}"

    def __str__(self) -> str:
        return self.normalized


def parse_pcid(text: str) -> Pcid:
    """Parse a PCID: 17 or 18 letters/digits, no separators (Hubject ``^[a-zA-Z0-9]{17,18}$``).

    Normalised to upper case like the other identifiers (WMIs are upper case by definition); callers that
    must reproduce an OEM's exact CN should keep the original text as well.
    """
    kind = "PCID"
    if not isinstance(text, str):
        raise TypeError(f"PCID must be str, not {type(text).__name__}")
    _check_charset(kind, text, "", "letters A-Z or digits 0-9 (no separators)")
    if len(text) not in (17, 18):
        raise _fail(kind, text, f"{_chars(len(text))}, expected 17 (WMI 3 + 14) or 18 (with check character)")
    value = text.upper()
    return Pcid(value[:3], value[3:17], value[17] if len(value) == 18 else None)
