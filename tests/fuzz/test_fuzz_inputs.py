"""Hypothesis fuzzing of the parsers that see hostile input first: CSR loading + policy, OCPP CertificateHashData,
serials. The only acceptable outcome for garbage is a PkiError (a clean 4xx / CALLERROR), never another exception.

The default run is bounded (a few hundred examples, seconds); ``PNC_FUZZ_LONG=1 pytest -m slow tests/fuzz`` runs the
long campaign."""

from __future__ import annotations

import os
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pki import csr_policy
from pki.errors import PkiError
from pki.hashdata import CertificateHashData, parse_serial_hex
from pki.profiles import CertKind, Generation, get_profile
from tests.fuzz.strategies import mutated

LONG = pytest.mark.skipif(not os.environ.get("PNC_FUZZ_LONG"), reason="long fuzz campaign: set PNC_FUZZ_LONG=1 ("
                            "marked slow; the default suite runs the bounded version)")
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
SLOW = settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
PROFILES = [get_profile(CertKind.STATION_CLIENT, Generation.OCPP), get_profile(CertKind.SECC_LEAF,
            Generation.ISO15118_2), get_profile(CertKind.CONTRACT_LEAF, Generation.ISO15118_2),
            get_profile(CertKind.SECC_LEAF, Generation.ISO15118_20)]

_KEY = ec.generate_private_key(ec.SECP256R1())
_BASE = (x509.CertificateSigningRequestBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CS001"),
                                  x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test CPO")]))
         .sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER))

names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80)


def _csr_check(data: bytes | str, profile_index: int) -> None:
    try:
        csr = csr_policy.load_csr(data)
        csr_policy.evaluate(csr, PROFILES[profile_index % len(PROFILES)],
                            csr_policy.SubjectExpectation(common_name="CS001", organization="Test CPO"))
    except PkiError:
        pass


@st.composite
def wellformed_csr(draw: st.DrawFn) -> bytes:
    oids = [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.COUNTRY_NAME, NameOID.DOMAIN_COMPONENT,
            NameOID.ORGANIZATIONAL_UNIT_NAME]
    attrs = []
    for _ in range(draw(st.integers(0, 6))):
        oid = draw(st.sampled_from(oids))
        value = draw(names)
        if oid == NameOID.COUNTRY_NAME:
            value = draw(st.text(alphabet="ABCDEZ", min_size=2, max_size=2))
        try:
            attrs.append(x509.NameAttribute(oid, value))
        except ValueError:  # cryptography refuses e.g. a CN over 64 characters
            assume(False)
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if draw(st.booleans()):
        builder = builder.add_extension(x509.BasicConstraints(ca=draw(st.booleans()), path_length=None),
                                        critical=draw(st.booleans()))
    if draw(st.booleans()):
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(draw(
            st.from_regex(r"[a-z]{1,10}\.[a-z]{2,5}", fullmatch=True)))]), critical=False)
    try:
        return builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    except ValueError:  # cryptography itself refuses to encode this subject
        assume(False)
        raise


@FAST
@given(st.binary(max_size=4096), st.integers(0, 3))
def test_csr_random_bytes(data: bytes, p: int) -> None:
    _csr_check(data, p)


@FAST
@given(mutated(_BASE), st.integers(0, 3))
def test_csr_mutated_der(data: bytes, p: int) -> None:
    _csr_check(data, p)


@FAST
@given(wellformed_csr(), st.integers(0, 3))
def test_csr_wellformed_hostile_subjects(data: bytes, p: int) -> None:
    _csr_check(data, p)


@FAST
@given(st.text(max_size=3000), st.integers(0, 3))
def test_csr_random_text(data: str, p: int) -> None:
    _csr_check("-----BEGIN CERTIFICATE REQUEST-----\n" + data + "\n-----END CERTIFICATE REQUEST-----\n", p)


def test_csr_with_invalid_version_is_a_clean_refusal() -> None:
    """Regression (found by the long campaign): CSR version 1 raised InvalidVersion, not ValueError -> 500."""
    der = bytearray(_BASE)
    idx = der.index(bytes([0x02, 0x01, 0x00]))  # CertificationRequestInfo.version INTEGER 0
    der[idx + 2] = 0x01
    with pytest.raises(PkiError):
        csr_policy.load_csr(bytes(der))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=200),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                        max_size=3), max_leaves=6)
hashdata_keys = st.sampled_from(["hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber", "x"])


@FAST
@given(st.dictionaries(hashdata_keys, json_values | st.from_regex(r"[0-9a-fA-F]{0,130}", fullmatch=True),
                       max_size=5))
def test_hash_data_parsing(data: dict[str, Any]) -> None:
    try:
        CertificateHashData.from_ocpp(data)
    except PkiError:
        pass


@FAST
@given(st.one_of(st.text(max_size=100), st.from_regex(r"\s*[0-9a-fA-F]{0,60}\s*", fullmatch=True)))
def test_serial_parsing(value: str) -> None:
    try:
        assert parse_serial_hex(value) >= 0
    except PkiError:
        pass


@pytest.mark.slow
@LONG
@SLOW
@given(mutated(_BASE), st.integers(0, 3))
def test_csr_mutated_der_long(data: bytes, p: int) -> None:
    _csr_check(data, p)


@pytest.mark.slow
@LONG
@SLOW
@given(wellformed_csr(), st.integers(0, 3))
def test_csr_wellformed_long(data: bytes, p: int) -> None:
    _csr_check(data, p)
