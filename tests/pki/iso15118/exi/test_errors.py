"""Defective input → ExiError with a bit position; bounded fuzzing of the decoder."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pki.iso15118 import exi
from pki.iso15118.exi import NS_ISO2, NS_ISO20, ExiError
from tests.pki.iso15118.exi.corpus import cases

DOCS = [(c[2], c[3]) for c in cases() if c[1] == "doc"]
SAMPLES = [(ns, exi.encode_message(t, ns)) for ns, t in DOCS[::6]]


def test_truncated_streams_raise_with_position() -> None:
    ns, data = SAMPLES[0]
    for cut in range(0, len(data) - 1, max(1, len(data) // 40)):
        with pytest.raises(ExiError) as ei:
            exi.decode_message(data[:cut], ns)
        assert ei.value.bit_position is not None
        assert ei.value.bit_position <= cut * 8


def test_wrong_namespace() -> None:
    with pytest.raises(ExiError, match="unsupported namespace"):
        exi.decode_message(SAMPLES[0][1], "urn:nope")
    with pytest.raises(ExiError):
        exi.encode_message({"V2G_Message": {}}, "urn:iso:std:iso:15118:-20:DC")
    with pytest.raises(ExiError, match="not a global element"):
        exi.encode_message(DOCS[0][1], NS_ISO20)


def test_stream_of_the_other_schema_is_rejected() -> None:
    # every -2 document decoded with the -20 grammar (and vice versa) fails with a typed error
    for ns, tree in DOCS:
        data = exi.encode_message(tree, ns)
        other = NS_ISO20 if ns == NS_ISO2 else NS_ISO2
        with pytest.raises(ExiError):
            exi.decode_message(data, other)


def test_not_exi_and_header_options() -> None:
    for bad in (b"", b"\x00", b"$EXI\x80", b"\xa0\x00", b"\x81\x00"):
        with pytest.raises(ExiError):
            exi.decode_message(bad, NS_ISO2)


def test_grammar_violations_on_encode() -> None:
    ns, tree = DOCS[0]
    body = tree["V2G_Message"]["Body"]["CertificateInstallationReq"]
    for broken in (
        {**body, "Bogus": 1},
        {k: v for k, v in body.items() if k != "ListOfRootCertificateIDs"},
        {**body, "OEMProvisioningCert": "not bytes"},
        {**body, "OEMProvisioningCert": b"x" * 801},
    ):
        msg = {
            "V2G_Message": {
                "Header": tree["V2G_Message"]["Header"],
                "Body": {"CertificateInstallationReq": broken},
            }
        }
        with pytest.raises(ExiError) as ei:
            exi.encode_message(msg, ns)
        assert ei.value.bit_position is not None


def test_second_level_event_is_rejected() -> None:
    # flip the V2G_Message SE code to the SE(*) escape (80 of 7 bits)
    ns, data = SAMPLES[0]
    b = bytearray(data)
    b[1] = (80 << 1) | (b[1] & 1)
    with pytest.raises(ExiError, match=r"second-level|invalid event"):
        exi.decode_message(bytes(b), ns)


def _decode_any(data: bytes) -> None:
    for ns in (NS_ISO2, NS_ISO20):
        try:
            exi.decode_message(data, ns)
        except ExiError:
            pass
        try:
            exi.decode_fragment(data, ns)
        except ExiError:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_any(b"\x80" + data)
    _decode_any(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    st.integers(0, 10**6),
)
def test_fuzz_mutated_messages(sample: tuple[str, bytes], flips: list[tuple[int, int]], cut: int) -> None:
    ns, data = sample
    b = bytearray(data)
    for pos, val in flips:
        b[pos % len(b)] = val
    b = b[: max(1, cut % (len(b) + 1))]
    try:
        exi.decode_message(bytes(b), ns)
    except ExiError as e:
        assert e.bit_position is None or e.bit_position <= len(b) * 8


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12))
def test_fuzz_mutated_messages_long(sample: tuple[str, bytes], flips: list[tuple[int, int]]) -> None:
    ns, data = sample
    b = bytearray(data)
    for pos, val in flips:
        b[pos % len(b)] = val
    try:
        exi.decode_message(bytes(b), ns)
    except ExiError:
        pass


_ = Any
