"""Certificate path validation for ISO 15118 chains (RFC 5280 §6 subset, [V2G2-885]).

Why not ``cryptography.x509.verification``: its verifiers implement the CA/Browser-Forum Web PKI profile (EKU and
SAN requirements, P-256/P-384/RSA only), which rejects ISO 15118 chains by design (no EKU, P-521/Ed448 in -20).
So the checks are made here explicitly, each with the ISO 15118 response code it maps to:

* every certificate is within its validity period at ``at`` (``FAILED_CertificateExpired``), the trust anchor
  included (ISO 15118 stations reject expired roots too);
* each certificate is signed by the next one, whose subject equals its issuer (``FAILED_CertChainError``);
* every issuer is a CA: basicConstraints cA=TRUE, keyUsage keyCertSign when keyUsage is present, and its
  pathLenConstraint is not exceeded by the intermediates below it;
* the end-entity is not a CA; no certificate carries a critical extension we do not understand;
* at most ``max_intermediates`` certificates between leaf and anchor ([V2G2-009]: three below the root in total).

Tests compare every verdict with ``openssl verify -x509_strict`` (tests/pki/iso15118/test_pathval.py).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtensionOID

from pki.errors import PkiError

# Extensions a relying party must be able to process when marked critical (what our profiles and the reference
# PKIs use); anything else critical makes the certificate unusable (RFC 5280 §4.2).
_UNDERSTOOD = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
    ExtensionOID.CERTIFICATE_POLICIES,
}


class PathError(PkiError):
    """A chain does not validate; ``code`` is the ISO 15118 ResponseCode it maps to."""

    status = 422

    def __init__(self, message: str, *, code: str = "FAILED_CertChainError") -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class ValidatedPath:
    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]  # leaf's issuer first
    anchor: x509.Certificate

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return (self.leaf, *self.intermediates, self.anchor)


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "<empty subject>"


def _check_time(cert: x509.Certificate, at: dt.datetime, what: str) -> None:
    if at < cert.not_valid_before_utc:
        raise PathError(f"{what} {_name(cert)} is not valid before {cert.not_valid_before_utc.isoformat()}",
                        code="FAILED_CertChainError")
    if at > cert.not_valid_after_utc:
        raise PathError(f"{what} {_name(cert)} expired at {cert.not_valid_after_utc.isoformat()}",
                        code="FAILED_CertificateExpired")


def _check_critical(cert: x509.Certificate, what: str) -> None:
    for ext in cert.extensions:
        if ext.critical and ext.oid not in _UNDERSTOOD:
            raise PathError(f"{what} {_name(cert)} has an unsupported critical extension {ext.oid.dotted_string}")


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _check_ca(cert: x509.Certificate, below: int, what: str) -> None:
    """``below`` = number of intermediate CA certificates between this CA and the end entity."""
    bc = _basic_constraints(cert)
    if bc is None or not bc.ca:
        raise PathError(f"{what} {_name(cert)} is not a CA (basicConstraints cA is not TRUE)")
    if bc.path_length is not None and below > bc.path_length:
        raise PathError(f"{what} {_name(cert)} allows {bc.path_length} intermediate CA(s) below it, found {below}")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not ku.key_cert_sign:
        raise PathError(f"{what} {_name(cert)} lacks keyUsage keyCertSign")


@functools.lru_cache(maxsize=4096)
def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Cached: certificates hash and compare by their DER, and a signature over the same bytes verifies the same
    way every time — the OEM and V2G sub-CA links of every installation request are checked once, not per EV."""
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def validate_path(
    leaf: x509.Certificate,
    untrusted: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    at: dt.datetime,
    *,
    max_intermediates: int = 2,
    end_entity: bool = True,
) -> ValidatedPath:
    """Build and validate leaf -> intermediates -> one of ``anchors``. Raises :class:`PathError`.

    ``end_entity=False`` validates a sub-CA certificate itself (trust-store imports): it must then be a CA.
    """
    _check_time(leaf, at, "certificate")
    _check_critical(leaf, "certificate")
    bc = _basic_constraints(leaf)
    if end_entity and bc is not None and bc.ca:
        raise PathError(f"end-entity certificate {_name(leaf)} is a CA certificate")
    if not end_entity and (bc is None or not bc.ca):
        raise PathError(f"{_name(leaf)} is not a CA certificate")
    chain: list[x509.Certificate] = []
    current = leaf
    pool = list(untrusted)
    while True:
        for anchor in anchors:
            if anchor.subject == current.issuer and _signed_by(current, anchor):
                _check_time(anchor, at, "trust anchor")
                _check_ca(anchor, len(chain), "trust anchor")
                return ValidatedPath(leaf, tuple(chain), anchor)
        if len(chain) >= max_intermediates:
            raise PathError(f"no trusted root within {max_intermediates} sub-CA(s) above {_name(leaf)} "
                            f"(issuer {current.issuer.rfc4514_string()})")
        candidates = [c for c in pool if c.subject == current.issuer]
        if not candidates:
            raise PathError(f"issuer {current.issuer.rfc4514_string()} of {_name(current)} is neither a trusted "
                            "root nor a known sub-CA")
        issuer = next((c for c in candidates if _signed_by(current, c)), None)
        if issuer is None:
            raise PathError(f"signature of {_name(current)} does not verify with its issuer's key")
        _check_time(issuer, at, "sub-CA")
        _check_critical(issuer, "sub-CA")
        _check_ca(issuer, len(chain), "sub-CA")
        chain.append(issuer)
        pool.remove(issuer)
        current = issuer
