"""Tests for pki.identifiers: published check-digit vectors, exact error messages, boundaries, properties."""

from __future__ import annotations

import random
import re
import secrets
from contextlib import AbstractContextManager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pki.identifiers import (
    Emaid,
    EvseId,
    IdentifierError,
    Pcid,
    SeccId,
    decimal_id,
    din_check_digit,
    emaid_check_digit,
    generate_emaid,
    new_emaid,
    parse_country_code,
    parse_emaid,
    parse_evse_id,
    parse_pcid,
    parse_secc_id,
)

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTERS = ALNUM[10:]


def raises_exactly(message: str) -> AbstractContextManager[pytest.ExceptionInfo[IdentifierError]]:
    """The whole message must match: error texts are part of the API (shown to operators)."""
    return pytest.raises(IdentifierError, match=f"^{re.escape(message)}$")


# ----------------------------------------------------------------------------------------------------------
# ISO 15118-2 Annex H / eMI3 check digit: all vectors from docs/standards.md §4
# ----------------------------------------------------------------------------------------------------------

ISO_VECTORS = [
    ("NN123ABCDEFGHI", "T"),
    ("FRXYZ123456789", "2"),
    ("ITA1B2C3E4F5G6", "4"),
    ("ESZU8WOX834H1D", "R"),
    ("PT73902837ABCZ", "Z"),
    ("DE83DUIEN83QGZ", "D"),
    ("DE83DUIEN83ZGQ", "M"),
    ("DE8AA001234567", "0"),
]


@pytest.mark.parametrize(("fourteen", "check"), ISO_VECTORS)
def test_iso_check_digit_vectors(fourteen: str, check: str) -> None:
    assert emaid_check_digit(fourteen) == check
    assert emaid_check_digit(fourteen.lower()) == check
    assert parse_emaid(fourteen + check, require_check_digit=True).check_digit == check


@pytest.mark.parametrize(("fourteen", "check"), ISO_VECTORS)
def test_iso_vectors_with_wrong_check_digit_are_rejected(fourteen: str, check: str) -> None:
    wrong = "0" if check != "0" else "1"
    with raises_exactly(f"EMAID {fourteen + wrong!r}: check digit {wrong!r} is wrong, expected {check!r}"):
        parse_emaid(fourteen + wrong)


def test_iso_check_digit_input_errors() -> None:
    with raises_exactly("EMAID 'DE8AA00123456': 13 characters, expected 14 (the EMAID without check digit)"):
        emaid_check_digit("DE8AA00123456")
    with raises_exactly(
        "EMAID 'DE8AA0012345670': 15 characters, expected 14 (the EMAID without check digit)"
    ):
        emaid_check_digit("DE8AA0012345670")
    with raises_exactly(
        "EMAID 'DE-8AA001234567': character '-' at position 3 is not allowed; "
        "expected letters A-Z or digits 0-9 (no separators)"
    ):
        emaid_check_digit("DE-8AA001234567")
    # Non-ASCII digits are digits to str.isalnum() but not to the standard.
    with raises_exactly(
        "EMAID 'DE٨٣DUIEN٨٣QGZ': character '٨' at position 3 is not allowed; "
        "expected letters A-Z or digits 0-9 (no separators)"
    ):
        emaid_check_digit("DE٨٣DUIEN٨٣QGZ")
    with pytest.raises(TypeError):
        emaid_check_digit(12345678901234)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------
# DIN SPEC 91286 check digit: all vectors from docs/standards.md §4
# ----------------------------------------------------------------------------------------------------------

DIN_VECTORS = [("000071", "9"), ("000110", "X"), ("000124", "0"), ("000114", "6"), ("000191", "5")]


@pytest.mark.parametrize(("instance", "check"), DIN_VECTORS)
def test_din_check_digit_vectors(instance: str, check: str) -> None:
    assert din_check_digit("INTNM" + instance) == check
    assert din_check_digit("intnm" + instance) == check


def test_din_and_iso_algorithms_differ() -> None:
    # The same provider/instance under the "00"+instance ISO convention gets an unrelated ISO check digit.
    assert din_check_digit("INTNM000110") == "X"
    assert emaid_check_digit("INTNM000000110") == "Y"


def test_din_does_not_detect_every_substitution() -> None:
    # Documented weakness (why ISO replaced it): T -> J in the provider ID keeps the same DIN check digit.
    assert din_check_digit("INTNM000071") == din_check_digit("INTJM000071") == "9"


def test_din_input_errors() -> None:
    with raises_exactly(
        "DIN EVCO-ID 'INTNM00007': 10 characters, "
        "expected 11 (country 2 + provider 3 + instance 6, no check digit)"
    ):
        din_check_digit("INTNM00007")
    with raises_exactly(
        "DIN EVCO-ID 'IN*NM000071': character '*' at position 3 is not allowed; "
        "expected letters A-Z or digits 0-9 (no separators)"
    ):
        din_check_digit("IN*NM000071")
    with raises_exactly(
        "DIN EVCO-ID '1NTNM000071': country code: character '1' at position 1 is not a letter; expected A-Z"
    ):
        din_check_digit("1NTNM000071")


# ----------------------------------------------------------------------------------------------------------
# parse_emaid
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "DE8AA0012345670",
        "de8aa0012345670",
        "DE-8AA-001234567-0",
        "de-8aa-001234567-0",
        "DE8AA-001234567-0",  # each separator is independently optional in the ISO ABNF
        "DE-8AA0012345670",
        "DE8AA001234567-0",
    ],
)
def test_parse_emaid_separators_and_case(text: str) -> None:
    emaid = parse_emaid(text)
    assert emaid == Emaid("DE", "8AA", "001234567", "0")
    assert emaid.normalized == "DE8AA0012345670"
    assert str(emaid) == "DE8AA0012345670"
    assert emaid.display == "DE-8AA-001234567-0"


def test_parse_emaid_without_check_digit() -> None:
    emaid = parse_emaid("de-8aa-001234567")
    assert emaid == Emaid("DE", "8AA", "001234567", None)
    assert emaid.normalized == "DE8AA001234567"
    assert emaid.display == "DE-8AA-001234567"
    assert emaid.with_check_digit() == "DE8AA0012345670"
    assert parse_emaid("DE8AA0012345670").with_check_digit() == "DE8AA0012345670"


def test_parse_emaid_lower_case_check_digit_accepted() -> None:
    assert parse_emaid("nn123abcdefghit").normalized == "NN123ABCDEFGHIT"


def test_parse_emaid_wrong_check_digit_example_from_brief() -> None:
    with raises_exactly("EMAID 'DE8AA0012345678': check digit '8' is wrong, expected '0'"):
        parse_emaid("DE8AA0012345678")
    with raises_exactly("EMAID 'de-8aa-001234567-x': check digit 'x' is wrong, expected '0'"):
        parse_emaid("de-8aa-001234567-x")


def test_parse_emaid_require_check_digit() -> None:
    with raises_exactly(
        "EMAID 'DE8AA001234567': check digit missing: 14 characters without separators, expected 15"
    ):
        parse_emaid("DE8AA001234567", require_check_digit=True)
    assert parse_emaid("DE8AA0012345670", require_check_digit=True).check_digit == "0"


@pytest.mark.parametrize(
    ("text", "n"),
    [("", 0), ("DE8AA00123", 10), ("DE8AA0012345", 12), ("DE-8AA-00123456", 13), ("DE8AA00123456701", 16)],
)
def test_parse_emaid_length_errors(text: str, n: int) -> None:
    with raises_exactly(
        f"EMAID {text!r}: {n} characters without separators, "
        "expected 14 (without check digit) or 15 (with check digit)"
    ):
        parse_emaid(text)


@pytest.mark.parametrize(
    ("text", "ch", "pos"),
    [
        ("DE_8AA001234567", "_", 3),
        ("DE*8AA*001234567", "*", 3),
        (" DE8AA001234567", " ", 1),
        ("DE8AA001234567 ", " ", 15),
        ("DE8AÄ001234567", "Ä", 5),
    ],
)
def test_parse_emaid_bad_characters(text: str, ch: str, pos: int) -> None:
    with raises_exactly(
        f"EMAID {text!r}: character {ch!r} at position {pos} is not allowed; "
        "expected letters A-Z, digits 0-9 or '-' separators"
    ):
        parse_emaid(text)


@pytest.mark.parametrize(
    ("text", "pos"),
    [
        ("-DE8AA001234567", 1),
        ("D-E8AA001234567", 2),
        ("DE8-AA001234567", 4),
        ("DE-8AA-0012-34567-0", 12),
        ("DE8AA001234567-", 15),
        ("DE-8AA-001234567-0-", 19),
    ],
)
def test_parse_emaid_misplaced_separator(text: str, pos: int) -> None:
    with raises_exactly(
        f"EMAID {text!r}: separator '-' at position {pos} is misplaced; separators may only stand between "
        "country code (2), provider ID (3), eMA instance (9) and check digit (1)"
    ):
        parse_emaid(text)


def test_parse_emaid_doubled_separator() -> None:
    with raises_exactly(
        "EMAID 'DE--8AA001234567': separator '-' at position 4 directly follows another separator"
    ):
        parse_emaid("DE--8AA001234567")


@pytest.mark.parametrize(("text", "ch", "pos"), [("1E8AA001234567", "1", 1), ("d98AA001234567", "9", 2)])
def test_parse_emaid_country_must_be_letters(text: str, ch: str, pos: int) -> None:
    with raises_exactly(
        f"EMAID {text!r}: country code: character {ch!r} at position {pos} is not a letter; expected A-Z"
    ):
        parse_emaid(text)


def test_parse_emaid_country_error_position_counts_separators() -> None:
    with raises_exactly(
        "EMAID 'D9-8AA-001234567': country code: character '9' at position 2 is not a letter; expected A-Z"
    ):
        parse_emaid("D9-8AA-001234567")


def test_parse_emaid_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        parse_emaid(None)  # type: ignore[arg-type]


def test_identifier_error_is_value_error() -> None:
    assert issubclass(IdentifierError, ValueError)


# ----------------------------------------------------------------------------------------------------------
# generate_emaid / new_emaid
# ----------------------------------------------------------------------------------------------------------


def test_generate_emaid() -> None:
    assert generate_emaid("DE", "8AA", "001234567") == "DE8AA0012345670"
    assert generate_emaid("nn", "123", "abcdefghi") == "NN123ABCDEFGHIT"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("D", "8AA", "001234567"), "country code 'D': 1 character, expected 2 letters A-Z"),
        (
            ("D1", "8AA", "001234567"),
            "country code 'D1': character '1' at position 2 is not a letter; expected A-Z",
        ),
        (
            ("DE", "8A", "001234567"),
            "EMAID provider ID '8A': 2 characters, expected 3 letters A-Z or digits 0-9",
        ),
        (
            ("DE", "8A-", "001234567"),
            "EMAID provider ID '8A-': character '-' at position 3 is not a letter or digit; "
            "expected A-Z or 0-9",
        ),
        (
            ("DE", "8AA", "00123456"),
            "EMAID eMA instance '00123456': 8 characters, expected 9 letters A-Z or digits 0-9",
        ),
    ],
)
def test_generate_emaid_errors(args: tuple[str, str, str], message: str) -> None:
    with raises_exactly(message):
        generate_emaid(*args)


def test_parse_country_code() -> None:
    assert parse_country_code("de") == "DE"
    assert parse_country_code("NN") == "NN"  # no ISO 3166 membership test on purpose
    with raises_exactly("country code 'DEU': 3 characters, expected 2 letters A-Z"):
        parse_country_code("DEU")


def test_new_emaid_random_default_uses_secrets() -> None:
    emaid = new_emaid("de", "8aa")
    parsed = parse_emaid(emaid, require_check_digit=True)
    assert (parsed.country, parsed.provider) == ("DE", "8AA")
    assert len(emaid) == 15


def test_new_emaid_seeded_rng_is_reproducible() -> None:
    # A seeded, non-cryptographic RNG is exactly what a reproducible test wants.
    first = new_emaid("DE", "8AA", rng=random.Random(7))
    assert first == new_emaid("DE", "8AA", rng=random.Random(7))
    assert len(new_emaid("DE", "8AA", rng=secrets)) == 15


def test_new_emaid_sequential() -> None:
    assert new_emaid("DE", "8AA", sequence=1234567) == "DE8AA0012345670"
    assert new_emaid("DE", "8AA", sequence=0) == generate_emaid("DE", "8AA", "000000000")
    assert new_emaid("DE", "8AA", sequence=999_999_999)[5:14] == "999999999"
    with raises_exactly("EMAID sequence 1000000000: out of range, expected 0 to 999999999"):
        new_emaid("DE", "8AA", sequence=10**9)
    with raises_exactly("EMAID sequence -1: out of range, expected 0 to 999999999"):
        new_emaid("DE", "8AA", sequence=-1)
    with pytest.raises(TypeError):
        new_emaid("DE", "8AA", sequence=True)


# ----------------------------------------------------------------------------------------------------------
# EMAID properties
# ----------------------------------------------------------------------------------------------------------

countries = st.text(alphabet=LETTERS + LETTERS.lower(), min_size=2, max_size=2)
alnum = LETTERS + LETTERS.lower() + "0123456789"
providers = st.text(alphabet=alnum, min_size=3, max_size=3)
instances = st.text(alphabet=alnum, min_size=9, max_size=9)


@given(countries, providers, instances)
def test_generated_emaids_parse_and_verify(country: str, provider: str, instance: str) -> None:
    emaid = generate_emaid(country, provider, instance)
    parsed = parse_emaid(emaid, require_check_digit=True)
    assert parsed.normalized == emaid
    assert parsed == Emaid(country.upper(), provider.upper(), instance.upper(), emaid[14])
    assert parse_emaid(parsed.display) == parsed
    assert parse_emaid(emaid.lower()) == parsed


@given(countries, providers, instances, st.integers(0, 14), st.sampled_from(ALNUM))
def test_any_single_substitution_is_detected(
    country: str, provider: str, instance: str, position: int, replacement: str
) -> None:
    # Guaranteed by the algorithm: at every position i the weights P1^i (mod 2) and P2^i (mod 3) are
    # invertible and char -> (q, r) is a bijection, so changing one character changes the syndrome.
    emaid = generate_emaid(country, provider, instance)
    if replacement == emaid[position]:
        return
    mutated = emaid[:position] + replacement + emaid[position + 1 :]
    if position < 2 and replacement.isdigit():
        with pytest.raises(IdentifierError, match="country code"):
            parse_emaid(mutated)
        return
    with pytest.raises(IdentifierError, match="check digit"):
        parse_emaid(mutated)


@given(countries, providers, instances, st.integers(0, 13))
def test_any_adjacent_transposition_is_detected(
    country: str, provider: str, instance: str, position: int
) -> None:
    # Also guaranteed: (I - P1) mod 2 and (I - P2) mod 3 are invertible, so swapping two different adjacent
    # characters changes the syndrome.
    emaid = generate_emaid(country, provider, instance)
    a, b = emaid[position], emaid[position + 1]
    if a == b:
        return
    swapped = emaid[:position] + b + a + emaid[position + 2 :]
    with pytest.raises(IdentifierError):
        parse_emaid(swapped)


def test_single_substitution_exhaustive_on_all_vectors() -> None:
    for fourteen, check in ISO_VECTORS:
        emaid = fourteen + check
        for position in range(2, 15):
            for replacement in ALNUM:
                if replacement != emaid[position]:
                    mutated = emaid[:position] + replacement + emaid[position + 1 :]
                    assert emaid_check_digit(mutated[:14]) != mutated[14], mutated


# ----------------------------------------------------------------------------------------------------------
# EVSE ID
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["DE*ICE*E45B*78C", "de*ice*e45b*78c", "DEICEE45B*78C", "DE*ICEE45B*78C", "DEICE*E45B*78C"]
)
def test_parse_evse_id_forms(text: str) -> None:
    evse = parse_evse_id(text)
    assert evse == EvseId("DE", "ICE", "45B*78C")
    assert evse.normalized == "DEICEE45B*78C"
    assert evse.display == "DE*ICE*E45B*78C"
    assert parse_evse_id(evse.normalized) == evse


def test_evse_id_boundary_lengths() -> None:
    assert parse_evse_id("DEICEE1").power_outlet_id == "1"  # 7 chars: minimum
    max37 = "DE*ICE*E" + "1" * 29
    assert len(max37) == 37
    assert parse_evse_id(max37).power_outlet_id == "1" * 29
    outlet31 = "DEICEE" + "A" * 31
    assert len(outlet31) == 37
    evse = parse_evse_id(outlet31)
    assert parse_evse_id(evse.normalized) == evse
    assert (
        len(evse.display) == 39
    )  # the starred form can exceed the XSD limit; that is why it is not .normalized
    with raises_exactly("EVSEID 'DEICEE': 6 characters, expected 7 to 37"):
        parse_evse_id("DEICEE")
    too_long = max37 + "1"
    with raises_exactly(f"EVSEID {too_long!r}: 38 characters, expected 7 to 37"):
        parse_evse_id(too_long)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DE*ICE*E", "power outlet ID missing after 'E' at position 8"),
        ("DE*IC_*E1", "character '_' at position 6 is not allowed; expected letters A-Z, digits 0-9 or '*'"),
        ("DE-ICE-E1", "character '-' at position 3 is not allowed; expected letters A-Z, digits 0-9 or '*'"),
        ("D1*ICE*E1", "country code: character '1' at position 2 is not a letter; expected A-Z"),
        (
            "DE*I*E*E1",
            "EVSE operator ID: character '*' at position 5 is not a letter or digit; expected A-Z or 0-9",
        ),
        ("DE*ICE*S123", "ID type: character 'S' at position 8, expected 'E'"),
        ("DE*ICE**E1", "ID type: character '*' at position 8, expected 'E'"),
        ("DE*ICE*E*12", "power outlet ID must start with a letter or digit, found '*' at position 9"),
        ("DEICEE" + "1" * 32, None),
    ],
)
def test_evse_id_errors(text: str, message: str | None) -> None:
    if message is None:  # 38 chars is caught by the total length before the outlet length
        message = "38 characters, expected 7 to 37"
    with raises_exactly(f"EVSEID {text!r}: {message}"):
        parse_evse_id(text)


# ----------------------------------------------------------------------------------------------------------
# SECC ID
# ----------------------------------------------------------------------------------------------------------

SECC_EXAMPLE = "DE-ICE-S-00003C4D557878675645330967543476-2"


def test_parse_secc_id_example() -> None:
    secc = parse_secc_id(SECC_EXAMPLE)
    assert secc == SeccId("DE", "ICE", "00003C4D557878675645330967543476", "2")
    assert secc.display == SECC_EXAMPLE
    assert secc.normalized == "DEICES00003C4D5578786756453309675434762"
    assert parse_secc_id(secc.normalized) == secc
    assert parse_secc_id(SECC_EXAMPLE.lower()) == secc
    assert parse_secc_id("DEICE-S00003C4D557878675645330967543476-2") == secc


def test_secc_id_check_digit_is_not_verified() -> None:
    # The algorithm is not in our sources: any alphanumeric check character is accepted (syntax only).
    assert parse_secc_id(SECC_EXAMPLE[:-1] + "Z").check_digit == "Z"


def test_secc_id_boundary_lengths() -> None:
    min39 = "DEICES" + "0" * 32 + "7"
    assert len(min39) == 39
    assert parse_secc_id(min39).controller_id == "0" * 32
    max64 = "DE-ICE-S-" + "A" * 53 + "-7"
    assert len(max64) == 64
    assert parse_secc_id(max64).controller_id == "A" * 53
    compact64 = "DEICES" + "A" * 57 + "7"
    assert len(compact64) == 64
    assert len(parse_secc_id(compact64).display) == 68
    with raises_exactly(f"SECC ID {min39[:-1]!r}: 38 characters, expected 39 to 64"):
        parse_secc_id(min39[:-1])
    with raises_exactly(f"SECC ID {max64 + 'A'!r}: 65 characters, expected 39 to 64"):
        parse_secc_id(max64 + "A")
    short_controller = "DE-ICE-S-" + "0" * 31 + "-7"  # 42 chars overall, but the controller ID is too short
    with raises_exactly(f"SECC ID {short_controller!r}: controller ID is 31 characters, expected 32 to 248"):
        parse_secc_id(short_controller)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SECC_EXAMPLE[:-1], "ends with separator '-' at position 42; expected a check digit"),
        (
            "DE-ICE-S-00003C4D5578786756-45330967543476-2",
            "controller ID: character '-' at position 28 is not a letter or digit; expected A-Z or 0-9",
        ),
        ("DE-ICE-E-00003C4D557878675645330967543476-2", "ID type: character 'E' at position 8, expected 'S'"),
        (
            "DE*ICE-S-00003C4D557878675645330967543476-2",
            "character '*' at position 3 is not allowed; expected letters A-Z, digits 0-9 or '-' separators",
        ),
        (
            "4E-ICE-S-00003C4D557878675645330967543476-2",
            "country code: character '4' at position 1 is not a letter; expected A-Z",
        ),
        (
            "DE--ICE-S-00003C4D557878675645330967543476-2",
            "EVSE operator ID: character '-' at position 4 is not a letter or digit; expected A-Z or 0-9",
        ),
    ],
)
def test_secc_id_errors(text: str, message: str) -> None:
    with raises_exactly(f"SECC ID {text!r}: {message}"):
        parse_secc_id(text)


# ----------------------------------------------------------------------------------------------------------
# PCID
# ----------------------------------------------------------------------------------------------------------


def test_parse_pcid() -> None:
    p17 = parse_pcid("wmiv1234567890abc")
    assert p17 == Pcid("WMI", "V1234567890ABC", None)
    assert p17.normalized == "WMIV1234567890ABC"
    p18 = parse_pcid("WMIV1234567890ABC7")
    assert p18 == Pcid("WMI", "V1234567890ABC", "7")
    assert str(p18) == "WMIV1234567890ABC7"


@pytest.mark.parametrize(("length", "ok"), [(16, False), (17, True), (18, True), (19, False)])
def test_pcid_boundary_lengths(length: int, ok: bool) -> None:
    text = ("WMI" + "1" * 20)[:length]
    if ok:
        assert parse_pcid(text).normalized == text
    else:
        with raises_exactly(
            f"PCID {text!r}: {length} characters, expected 17 (WMI 3 + 14) or 18 (with check character)"
        ):
            parse_pcid(text)


def test_pcid_bad_character() -> None:
    with raises_exactly(
        "PCID 'WMI-1234567890ABCD': character '-' at position 4 is not allowed; "
        "expected letters A-Z or digits 0-9 (no separators)"
    ):
        parse_pcid("WMI-1234567890ABCD")


@pytest.mark.parametrize(("text", "max_digits", "expected"), [
    ("42", None, 42), ("0042", 4, 42), ("12345678", 7, None), ("", None, None), ("4a", None, None),
    ("¹", None, None), ("٣", None, None), ("-1", None, None), (" 1", None, None),
])
def test_decimal_id_takes_ascii_digits_only(text: str, max_digits: int | None, expected: int | None) -> None:
    assert decimal_id(text, max_digits=max_digits) == expected
