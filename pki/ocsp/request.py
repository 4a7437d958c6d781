"""OCSP request parsing (RFC 6960 §4.1).

cryptography's loader is ~20x faster but refuses requests with more than one CertID, so it is tried first and
asn1crypto (a real ASN.1 library, strict DER) reads everything else. Anything neither accepts is
``malformedRequest``. Signed requests are accepted and their signature ignored (RFC 5019 §2.1.1 allows it).
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

from pki.errors import InvalidRequest
from pki.hashdata import HashAlgorithm

MAX_CERT_IDS = 32  # a request naming more certificates than this is refused, not answered by signing for each
MAX_NONCE = 32  # RFC 8954 §2.1: 1..32 octets


class MalformedRequest(InvalidRequest):
    """The bytes are not an OCSP request we can answer: respond ``malformedRequest``."""

    code = "MalformedRequest"


@dataclass(frozen=True, slots=True)
class CertId:
    algorithm: HashAlgorithm
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


@dataclass(frozen=True, slots=True)
class OcspRequest:
    cert_ids: tuple[CertId, ...]
    nonce: bytes | None


_CRYPTO_ALGS = {"sha1": HashAlgorithm.SHA1, "sha256": HashAlgorithm.SHA256, "sha384": HashAlgorithm.SHA384,
                "sha512": HashAlgorithm.SHA512}


_SIZES = {HashAlgorithm.SHA1: 20, HashAlgorithm.SHA256: 32, HashAlgorithm.SHA384: 48, HashAlgorithm.SHA512: 64}


def parse_request(data: bytes) -> OcspRequest:
    if not data:
        raise MalformedRequest("empty OCSP request")
    try:
        req = ocsp.load_der_ocsp_request(data)
    except ValueError:
        return _parse_asn1(data)
    try:
        algorithm = _CRYPTO_ALGS.get(req.hash_algorithm.name)
        nonce: bytes | None = None
        for ext in req.extensions:
            if isinstance(ext.value, x509.OCSPNonce):
                nonce = ext.value.nonce
    except (UnsupportedAlgorithm, ValueError):
        raise MalformedRequest("unsupported CertID hash algorithm or extension") from None
    if algorithm is None:
        raise MalformedRequest("unsupported CertID hash algorithm")
    cid = CertId(algorithm, req.issuer_name_hash, req.issuer_key_hash, req.serial_number)
    return OcspRequest((_check(cid),), _check_nonce(nonce))


def _parse_asn1(data: bytes) -> OcspRequest:
    try:
        req = asn1_ocsp.OCSPRequest.load(data, strict=True)
        tbs = req["tbs_request"]
        cert_ids: list[CertId] = []
        requests = tbs["request_list"]
        if len(requests) == 0 or len(requests) > MAX_CERT_IDS:
            raise MalformedRequest(f"an OCSP request must name 1..{MAX_CERT_IDS} certificates")
        for item in requests:
            rc = item["req_cert"]
            alg = _CRYPTO_ALGS.get(rc["hash_algorithm"]["algorithm"].native)
            if alg is None:
                raise MalformedRequest("unsupported CertID hash algorithm")
            cert_ids.append(_check(CertId(alg, rc["issuer_name_hash"].native, rc["issuer_key_hash"].native,
                                          int(rc["serial_number"].native))))
        nonce = None
        for ext in tbs["request_extensions"] or []:
            if ext["extn_id"].native == "nonce":
                nonce = ext["extn_value"].parsed.native
            elif ext["critical"].native:
                raise MalformedRequest("unsupported critical request extension")
        req.native  # noqa: B018 - force a full parse so trailing garbage inside the structure is refused
    except MalformedRequest:
        raise
    except Exception:  # asn1crypto raises ValueError, TypeError, KeyError, OverflowError on hostile input
        raise MalformedRequest("not a DER-encoded OCSP request") from None
    return OcspRequest(tuple(cert_ids), _check_nonce(nonce))


def _check(cid: CertId) -> CertId:
    size = _SIZES[cid.algorithm]
    if len(cid.issuer_name_hash) != size or len(cid.issuer_key_hash) != size:
        raise MalformedRequest("CertID hash lengths do not match the hash algorithm")
    if cid.serial < 0 or cid.serial.bit_length() > 160:
        raise MalformedRequest("CertID serial number out of range")
    return cid


def _check_nonce(nonce: bytes | None) -> bytes | None:
    if nonce is not None and not (1 <= len(nonce) <= MAX_NONCE):
        raise MalformedRequest(f"nonce must be 1..{MAX_NONCE} octets (RFC 8954)")
    return nonce
