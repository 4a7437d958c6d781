"""OCPP CertificateHashData and OCSP CertID lookup keys.

OCPP sends (hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber) as hex strings, case-insensitive, serial
without leading zeros; RFC 5019 clients send SHA-1 CertIDs, OCPP only SHA-256/384/512. We precompute, per issuing
CA, the name and key hashes under all four algorithms so any of them finds the issuer with one indexed lookup.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pki.errors import InvalidRequest


class HashAlgorithm(enum.StrEnum):
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"

    @classmethod
    def from_ocpp(cls, value: str) -> HashAlgorithm:
        """OCPP's enum is SHA256/SHA384/SHA512 (no SHA-1)."""
        try:
            alg = cls(value.lower())
        except ValueError:
            raise InvalidRequest(f"hashAlgorithm {value!r} is not one of SHA256, SHA384, SHA512") from None
        if alg is cls.SHA1:
            raise InvalidRequest("hashAlgorithm SHA1 is not allowed in OCPP CertificateHashData")
        return alg

    @property
    def ocpp(self) -> str:
        return self.value.upper()

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.value, data).digest()


def subject_public_key_bits(cert: x509.Certificate) -> bytes:
    """Contents of the subjectPublicKey BIT STRING (tag, length and unused-bits octet excluded), RFC 6960 §4.1.1."""
    spki = asn1_keys.PublicKeyInfo.load(
        cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    bit_string = spki["public_key"]
    contents: bytes = bit_string.contents
    return contents[1:]


@dataclass(frozen=True)
class IssuerHashes:
    """Name/key hashes of one CA certificate, as they appear in the CertIDs of the certificates it issued."""

    algorithm: HashAlgorithm
    name_hash: str  # lower-case hex
    key_hash: str


def issuer_hashes(ca_cert: x509.Certificate) -> list[IssuerHashes]:
    name_der = ca_cert.subject.public_bytes()
    key_bits = subject_public_key_bits(ca_cert)
    return [IssuerHashes(a, a.digest(name_der).hex(), a.digest(key_bits).hex()) for a in HashAlgorithm]


def serial_to_hex(serial: int) -> str:
    """OCPP/our canonical serial form: lower-case hex, no leading zeros, no 0x (4095 -> 'fff')."""
    if serial < 0:
        raise InvalidRequest("serial numbers are non-negative")
    return format(serial, "x")


_HEX = re.compile(r"^[0-9a-fA-F]+$")


def parse_serial_hex(value: str) -> int:
    v = value.strip()
    if not v or len(v) > 40 or not _HEX.match(v):
        raise InvalidRequest(f"serialNumber {value!r} must be 1-40 hex digits")
    return int(v, 16)


@dataclass(frozen=True)
class CertificateHashData:
    """OCPP CertificateHashDataType, normalised (lower-case hex, serial without leading zeros)."""

    hash_algorithm: HashAlgorithm
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str

    @classmethod
    def from_ocpp(cls, data: dict[str, str]) -> CertificateHashData:
        if not isinstance(data, dict):
            raise InvalidRequest("CertificateHashData must be an object")
        for key in ("hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber"):
            if key in data and not isinstance(data[key], str):  # hostile JSON: numbers, lists, null
                raise InvalidRequest(f"CertificateHashData.{key} must be a string")
        try:
            alg = HashAlgorithm.from_ocpp(data["hashAlgorithm"])
            name_hash = data["issuerNameHash"]
            key_hash = data["issuerKeyHash"]
            serial = data["serialNumber"]
        except KeyError as missing:
            raise InvalidRequest(f"CertificateHashData lacks {missing.args[0]}") from None
        size = hashlib.new(alg.value).digest_size * 2
        for field_name, value in (("issuerNameHash", name_hash), ("issuerKeyHash", key_hash)):
            if len(value) != size or not _HEX.match(value):
                raise InvalidRequest(f"{field_name} must be {size} hex digits for {alg.ocpp}")
        return cls(alg, name_hash.lower(), key_hash.lower(), serial_to_hex(parse_serial_hex(serial)))

    def to_ocpp(self) -> dict[str, str]:
        return {
            "hashAlgorithm": self.hash_algorithm.ocpp,
            "issuerNameHash": self.issuer_name_hash,
            "issuerKeyHash": self.issuer_key_hash,
            "serialNumber": self.serial_number,
        }


def certificate_hash_data(
    cert: x509.Certificate, issuer: x509.Certificate | None, algorithm: HashAlgorithm = HashAlgorithm.SHA256
) -> CertificateHashData:
    """Hash data of ``cert``; ``issuer`` is the issuing CA certificate (``None`` or ``cert`` for a self-signed root)."""
    issuer_cert = issuer or cert
    return CertificateHashData(
        algorithm,
        algorithm.digest(cert.issuer.public_bytes()).hex(),
        algorithm.digest(subject_public_key_bits(issuer_cert)).hex(),
        serial_to_hex(cert.serial_number),
    )
