"""Turn a profile + subject + public key + issuer into a signed certificate.

The builder is pure: no database, no key store. The CA service (:mod:`pki.authority`) wraps it in the
write-ahead issuance record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import AuthorityInformationAccessOID

from pki.errors import PolicyViolation, SizeLimitExceeded
from pki.keys.base import KeyAlgorithm, Signer, new_private_key, public_key_algorithm
from pki.profiles.base import OCSP_NOCHECK, CnRule, Generation, Profile

_DER = Encoding.DER


@dataclass(frozen=True)
class Urls:
    """Where relying parties find our OCSP responder, issuer certificate and CRL (placed in AIA / CRL DP)."""

    ocsp: str | None
    ca_issuers: str | None
    crl: str | None


def signature_hash(
    issuer_key: Signer | x509.Certificate, generation: Generation
) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """ecdsa-with-SHA256 for -2 and OCPP P-256, SHA-512 for P-521 (-20), none for Ed448 (pure EdDSA)."""
    key = issuer_key.public_key() if isinstance(issuer_key, x509.Certificate) else issuer_key
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name == "secp521r1":
            return hashes.SHA512()
        if key.curve.name == "secp384r1":
            return hashes.SHA384()
        return hashes.SHA256()
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return hashes.SHA256()
    raise PolicyViolation(f"unsupported issuer key type {type(key).__name__}")


def max_signature_len(key: Signer) -> int:
    """Upper bound of the DER signature, so a size check made with a throwaway key is conservative."""
    if isinstance(key, ed448.Ed448PrivateKey):
        return 114
    if isinstance(key, ec.EllipticCurvePrivateKey):
        n = (key.curve.key_size + 7) // 8
        return 2 * (n + 1) + 6 + (1 if 2 * (n + 3) > 127 else 0)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.key_size // 8
    raise PolicyViolation("unsupported signing key")


def _signature_len(cert: x509.Certificate) -> int:
    return len(cert.signature)


@dataclass(frozen=True)
class CertificateTemplate:
    """Everything the builder needs except the issuer's private key."""

    profile: Profile
    subject: x509.Name
    public_key: CertificatePublicKeyTypes
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    issuer_name: x509.Name
    issuer_public_key: CertificatePublicKeyTypes
    urls: Urls
    dns_names: tuple[str, ...] = ()


def _builder(t: CertificateTemplate) -> x509.CertificateBuilder:
    """The certificate of ``t`` before signing. Extensions in a fixed order: BasicConstraints, KeyUsage, SKI, AKI,
    EKU, SAN, OCSP no-check, AIA, CRL distribution point."""
    key_alg = public_key_algorithm(t.public_key)
    if key_alg is None:
        raise PolicyViolation("subject key type is not supported")
    head, middle, tail = _constant_extensions(t, key_alg)
    extensions = [*head, _extension(x509.SubjectKeyIdentifier.from_public_key(t.public_key), critical=False),
                  *middle]
    if t.profile.cn_rule is CnRule.FQDN and t.dns_names:
        extensions.append(_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in t.dns_names]),
                                     critical=False))
    extensions.extend(tail)
    return x509.CertificateBuilder(
        issuer_name=t.issuer_name, subject_name=t.subject, public_key=t.public_key, serial_number=t.serial,
        not_valid_before=t.not_before, not_valid_after=t.not_after, extensions=extensions,
    )


_Extensions = tuple["x509.Extension[x509.ExtensionType]", ...]
_EXTENSION_CACHE: dict[tuple[object, ...], tuple[Profile, _Extensions, _Extensions, _Extensions]] = {}


def _extension(value: x509.ExtensionType, *, critical: bool) -> x509.Extension[x509.ExtensionType]:
    return x509.Extension(value.oid, critical, value)


def _constant_extensions(t: CertificateTemplate, key_alg: KeyAlgorithm) -> tuple[_Extensions, _Extensions,
                                                                                 _Extensions]:
    """The extensions that depend only on the profile, the subject key's algorithm, the issuer key and the URLs
    — the same for every certificate one CA issues of one kind. Building them (AIA, CRL DP and AKI objects) cost
    about as much as the ECDSA signature, so they are made once and reused; profiles are module-level singletons
    (the cache checks identity) and the issuer key is keyed by its encoding."""
    p = t.profile
    issuer_spki = t.issuer_public_key.public_bytes(_DER, PublicFormat.SubjectPublicKeyInfo)
    key = (id(p), key_alg, t.urls, issuer_spki)
    hit = _EXTENSION_CACHE.get(key)
    if hit is not None and hit[0] is p:
        return hit[1], hit[2], hit[3]
    head = (_extension(x509.BasicConstraints(ca=p.is_ca, path_length=p.path_length), critical=True),
            _extension(p.key_usage_for(key_alg), critical=True))
    middle: list[x509.Extension[x509.ExtensionType]] = []
    if not p.is_root:
        middle.append(_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            t.issuer_public_key), critical=False))  # type: ignore[arg-type]
    if p.extended_key_usage:
        middle.append(_extension(x509.ExtendedKeyUsage(list(p.extended_key_usage)), critical=False))
    tail: list[x509.Extension[x509.ExtensionType]] = []
    if p.ocsp_nocheck:
        tail.append(_extension(x509.UnrecognizedExtension(OCSP_NOCHECK, b"\x05\x00"), critical=False))
    if p.aia and not p.is_root:
        access = []
        if t.urls.ocsp:
            access.append(
                x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(t.urls.ocsp))
            )
        if t.urls.ca_issuers:
            access.append(
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(t.urls.ca_issuers)
                )
            )
        if access:
            tail.append(_extension(x509.AuthorityInformationAccess(access), critical=False))
    if p.crl_distribution_point and t.urls.crl and not p.is_root:
        tail.append(_extension(x509.CRLDistributionPoints(
            [x509.DistributionPoint([x509.UniformResourceIdentifier(t.urls.crl)], None, None, None)]),
            critical=False))
    if len(_EXTENSION_CACHE) > 1_000:
        _EXTENSION_CACHE.clear()
    _EXTENSION_CACHE[key] = (p, head, tuple(middle), tuple(tail))
    return head, tuple(middle), tuple(tail)


def check_size(template: CertificateTemplate, issuer_key: Signer) -> int:
    """Estimate the final DER size with a throwaway key of the issuer's algorithm, before anything is recorded.

    Raises :class:`SizeLimitExceeded` so that an oversize certificate is refused up front, never signed.
    """
    limit = template.profile.max_der_size
    if limit is None:
        return 0
    alg = _algorithm_of(issuer_key)
    key = _size_key(template, alg)
    worst = _SIZE_CACHE.get(key)
    if worst is None:
        throwaway = new_private_key(alg)
        probe = _builder(template).sign(throwaway, signature_hash(throwaway, template.profile.generation))
        worst = len(probe.public_bytes(_DER)) - _signature_len(probe) + max_signature_len(throwaway)
        if len(_SIZE_CACHE) > 10_000:
            _SIZE_CACHE.clear()
        _SIZE_CACHE[key] = worst
    if worst > limit:
        raise SizeLimitExceeded(
            f"{template.profile.kind.value} certificate would be {worst} bytes DER, over the "
            f"{limit}-byte limit of {template.profile.generation.value}; shorten the subject"
        )
    return worst


_SIZE_CACHE: dict[tuple[object, ...], int] = {}


def _size_key(t: CertificateTemplate, alg: KeyAlgorithm) -> tuple[object, ...]:
    """Everything the DER length depends on: lengths of the variable parts, not their values.

    Serials always have the same length (top bit forced), validity dates switch from UTCTime to GeneralizedTime in
    2050 (two bytes longer), names and keys contribute their encoded lengths.
    """
    return (
        t.profile.kind, t.profile.generation, alg, t.serial.bit_length(),
        len(t.subject.public_bytes()), len(t.issuer_name.public_bytes()),
        len(t.public_key.public_bytes(_DER, PublicFormat.SubjectPublicKeyInfo)),
        t.not_before.year >= 2050, t.not_after.year >= 2050,
        len(t.urls.ocsp or ""), len(t.urls.ca_issuers or ""), len(t.urls.crl or ""),
        tuple(len(n) for n in t.dns_names),
    )


def sign_certificate(template: CertificateTemplate, issuer_key: Signer) -> x509.Certificate:
    cert = _builder(template).sign(issuer_key, signature_hash(issuer_key, template.profile.generation))
    limit = template.profile.max_der_size
    if limit is not None and len(cert.public_bytes(_DER)) > limit:  # defensive: check_size is conservative
        raise SizeLimitExceeded(f"signed certificate exceeds {limit} bytes")
    return cert


def _algorithm_of(key: Signer) -> KeyAlgorithm:
    alg = public_key_algorithm(key.public_key())
    if alg is None:
        raise PolicyViolation("unsupported issuer key algorithm")
    return alg

