"""OCSP response building (RFC 6960 §4.2, RFC 5019 §2.2).

One CertID: cryptography's builder (fast, ~0.1 ms with a delegated signer). Several CertIDs: the ResponseData is
assembled with asn1crypto structures and its DER signed with the same signer (cryptography writes one
SingleResponse only). Both: responder byKey, nextUpdate always, whole seconds, nonce echoed when given, the
delegated responder certificate in ``certs``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, padding, rsa
from cryptography.x509 import ocsp

from pki.hashdata import HashAlgorithm, subject_public_key_bits
from pki.keys.base import Signer
from pki.ocsp.request import CertId
from pki.profiles import Generation
from pki.profiles.builder import signature_hash
from pki.revocation import EffectiveStatus


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


MALFORMED = _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
INTERNAL_ERROR = _unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)
TRY_LATER = _unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
UNAUTHORIZED = _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)

_HASHES: dict[HashAlgorithm, hashes.HashAlgorithm] = {
    HashAlgorithm.SHA1: hashes.SHA1(),  # noqa: S303 - CertID hash of RFC 5019 clients, not a signature
    HashAlgorithm.SHA256: hashes.SHA256(),
    HashAlgorithm.SHA384: hashes.SHA384(),
    HashAlgorithm.SHA512: hashes.SHA512(),
}


@dataclass(frozen=True)
class ResponderIdentity:
    """Who signs: a delegated OCSP signer (certificate included) or the CA itself (certificate not included)."""

    key: Signer
    certificate: x509.Certificate
    include_certificate: bool
    signer_id: int | None  # OcspSigner row, None for the CA key

    @property
    def key_hash(self) -> bytes:
        return hashlib.sha1(subject_public_key_bits(self.certificate)).digest()  # noqa: S324 - RFC 6960 KeyHash

    @property
    def signature_hash(self) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
        return signature_hash(self.key, Generation.OCPP)


def _reason_flag(status: EffectiveStatus) -> x509.ReasonFlags | None:
    if status.reason is None:
        return None
    return status.reason.flag


def build_single(cert_id: CertId, status: EffectiveStatus, this_update: dt.datetime, next_update: dt.datetime,
                 identity: ResponderIdentity, nonce: bytes | None = None) -> tuple[bytes, dt.datetime]:
    """DER of a signed single response and its producedAt.

    cryptography stamps producedAt with the wall clock when it signs, which may be a second past ``this_update``
    (or, under a test clock, another day): callers take it from here for ``Last-Modified`` (RFC 5019 §6.2), never
    from their own ``now``."""
    cs = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED,
          "unknown": ocsp.OCSPCertStatus.UNKNOWN}[status.status]
    revoked_at = (status.revoked_at or this_update).replace(microsecond=0) if cs is ocsp.OCSPCertStatus.REVOKED \
        else None
    reason = _reason_flag(status) if cs is ocsp.OCSPCertStatus.REVOKED else None
    if reason is x509.ReasonFlags.unspecified:
        reason = None  # RFC 5280: the reason code unspecified SHOULD be absent
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        cert_id.issuer_name_hash, cert_id.issuer_key_hash, cert_id.serial, _HASHES[cert_id.algorithm], cs,
        this_update.replace(microsecond=0), next_update.replace(microsecond=0), revoked_at, reason,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, identity.certificate)
    if identity.include_certificate:
        builder = builder.certificates([identity.certificate])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    response = builder.sign(identity.key, identity.signature_hash)
    return response.public_bytes(serialization.Encoding.DER), response.produced_at_utc


_REASON_NAMES = {
    x509.ReasonFlags.unspecified: "unspecified", x509.ReasonFlags.key_compromise: "key_compromise",
    x509.ReasonFlags.ca_compromise: "ca_compromise", x509.ReasonFlags.affiliation_changed: "affiliation_changed",
    x509.ReasonFlags.superseded: "superseded", x509.ReasonFlags.cessation_of_operation: "cessation_of_operation",
    x509.ReasonFlags.certificate_hold: "certificate_hold", x509.ReasonFlags.remove_from_crl: "remove_from_crl",
    x509.ReasonFlags.privilege_withdrawn: "privilege_withdrawn", x509.ReasonFlags.aa_compromise: "aa_compromise",
}


def build_multi(items: list[tuple[CertId, EffectiveStatus]], this_update: dt.datetime, next_update: dt.datetime,
                identity: ResponderIdentity, nonce: bytes | None, produced_at: dt.datetime) -> bytes:
    """Several SingleResponses in one BasicOCSPResponse (asn1crypto structures, signed by ``identity``)."""
    tu = this_update.replace(microsecond=0)
    nu = next_update.replace(microsecond=0)
    singles = []
    for cid, status in items:
        if status.status == "revoked":
            revoked: dict[str, object] = {"revocation_time": (status.revoked_at or tu).replace(microsecond=0)}
            flag = _reason_flag(status)
            if flag is not None and flag is not x509.ReasonFlags.unspecified:
                revoked["revocation_reason"] = _REASON_NAMES[flag]
            cert_status = asn1_ocsp.CertStatus(name="revoked", value=revoked)
        else:
            cert_status = asn1_ocsp.CertStatus(name=status.status, value=asn1_core.Null())
        singles.append({
            "cert_id": {
                "hash_algorithm": {"algorithm": cid.algorithm.value},
                "issuer_name_hash": cid.issuer_name_hash,
                "issuer_key_hash": cid.issuer_key_hash,
                "serial_number": cid.serial,
            },
            "cert_status": cert_status,
            "this_update": tu,
            "next_update": nu,
        })
    data: dict[str, object] = {
        "version": "v1",
        "responder_id": asn1_ocsp.ResponderId(name="by_key", value=identity.key_hash),
        "produced_at": produced_at.replace(microsecond=0),
        "responses": singles,
    }
    if nonce is not None:
        data["response_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    tbs = asn1_ocsp.ResponseData(data)
    signature, algorithm = _sign(identity, tbs.dump())
    basic: dict[str, object] = {
        "tbs_response_data": tbs,
        "signature_algorithm": {"algorithm": algorithm},
        "signature": signature,
    }
    if identity.include_certificate:
        basic["certs"] = [asn1_x509.Certificate.load(identity.certificate.public_bytes(serialization.Encoding.DER))]
    response = asn1_ocsp.OCSPResponse({
        "response_status": "successful",
        "response_bytes": {"response_type": "basic_ocsp_response",
                           "response": asn1_ocsp.BasicOCSPResponse(basic)},
    })
    der: bytes = response.dump()
    return der


def _sign(identity: ResponderIdentity, data: bytes) -> tuple[bytes, str]:
    key = identity.key
    digest = identity.signature_hash
    if isinstance(key, ed448.Ed448PrivateKey):
        return key.sign(data), "ed448"
    assert digest is not None
    name = digest.name  # sha256 / sha384 / sha512
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(digest)), f"{name}_ecdsa"
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), digest), f"{name}_rsa"
    raise TypeError(f"unsupported OCSP signing key {type(key).__name__}")
