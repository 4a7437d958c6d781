"""Hypothesis fuzzing of the other two hostile entry points (issue 5 §6): the OCSP request parser and the OCPP-J
frame check that runs before the `ocpp` package sees a frame. Contract: the OCSP parser returns a request or raises
a PkiError (a clean "malformedRequest"); the frame check returns None or a CALLERROR, never raises, and its
CALLERROR always has a message id of at most 36 characters. Bounded by default; PNC_FUZZ_LONG=1 for long runs."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.ocpp.framing import check_frame
from pki.errors import PkiError
from pki.ocsp.request import parse_request
from tests.fuzz.strategies import mutated

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
SLOW = settings(max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
LONG = pytest.mark.skipif(not os.environ.get("PNC_FUZZ_LONG"), reason="long fuzz campaign: set PNC_FUZZ_LONG=1")


def _base_ocsp_request() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=Fuzz CA")
    now = dt.datetime.now(dt.UTC)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
          .sign(key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=leaf")).issuer_name(name)
            .public_key(ec.generate_private_key(ec.SECP256R1()).public_key()).serial_number(2**120 + 7)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    req = (ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, hashes.SHA256())
           .add_extension(x509.OCSPNonce(os.urandom(16)), critical=False).build())
    return req.public_bytes(serialization.Encoding.DER)


_OCSP = _base_ocsp_request()


def _ocsp_check(data: bytes) -> None:
    try:
        req = parse_request(data)
    except PkiError:
        return
    assert req.cert_ids, "a parsed request names at least one certificate"


def test_the_base_request_parses() -> None:
    req = parse_request(_OCSP)
    assert req.cert_ids[0].serial == 2**120 + 7 and req.nonce is not None


@FAST
@given(st.binary(max_size=2048))
def test_ocsp_random_bytes(data: bytes) -> None:
    _ocsp_check(data)


@FAST
@given(mutated(_OCSP))
def test_ocsp_mutated_der(data: bytes) -> None:
    _ocsp_check(data)


@pytest.mark.slow
@LONG
@SLOW
@given(mutated(_OCSP))
def test_ocsp_mutated_der_long(data: bytes) -> None:
    _ocsp_check(data)


ROUTES: dict[str, Any] = {"BootNotification": object(), "SignCertificate": object(), "Heartbeat": object()}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
frames = st.one_of(
    st.text(max_size=500),
    json_values.map(json.dumps),
    st.tuples(st.sampled_from([2, 3, 4, 5, -1, True, "2"]), json_values | st.text(max_size=60),
              st.sampled_from(["BootNotification", "SignCertificate", "Authorize", "Nope", ""]) | json_values,
              json_values).map(lambda t: json.dumps(list(t))),
    st.binary(max_size=100),
)


def _frame_check(raw: str | bytes, version: str) -> None:
    error = check_frame(raw, version=version, max_bytes=4096, routes=ROUTES)
    if error is not None:
        assert len(error.unique_id) <= 36
        frame = json.loads(error.to_json())
        assert frame[0] == 4 and isinstance(frame[2], str) and isinstance(frame[3], str)


@FAST
@given(frames, st.sampled_from(["1.6", "2.0.1", "2.1"]))
def test_ocpp_frames(raw: str | bytes, version: str) -> None:
    _frame_check(raw, version)


def test_oversize_frame_is_refused_by_bytes_not_characters() -> None:
    raw = json.dumps([2, "1", "Heartbeat", {"x": "€" * 1500}])  # 1,5xx characters, 4,5xx bytes
    error = check_frame(raw, version="2.0.1", max_bytes=4096, routes=ROUTES)
    assert error is not None and "exceeds 4096 bytes" in json.loads(error.to_json())[3]
