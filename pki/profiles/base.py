"""Certificate profiles as data.

A :class:`Profile` says what a certificate of one kind contains (extensions, key rules, size limit, validity);
:func:`pki.profiles.builder.build_certificate` turns a profile plus subject, key and issuer into a signed
certificate. Profiles are frozen so that policy cannot be changed by accident at run time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from pki.keys.base import KeyAlgorithm


class CertKind(enum.StrEnum):
    """Every kind of certificate pnc-pki issues. Values are stable identifiers (database, CLI, REST)."""

    V2G_ROOT = "v2g-root"
    CPO_SUB1 = "cpo-sub1"
    CPO_SUB2 = "cpo-sub2"
    SECC_LEAF = "secc-leaf"
    CPS_SUB1 = "cps-sub1"
    CPS_SUB2 = "cps-sub2"
    CPS_LEAF = "cps-leaf"
    MO_ROOT = "mo-root"
    MO_SUB1 = "mo-sub1"
    MO_SUB2 = "mo-sub2"
    CONTRACT_LEAF = "contract-leaf"
    OEM_ROOT = "oem-root"
    OEM_SUB1 = "oem-sub1"
    OEM_SUB2 = "oem-sub2"
    OEM_PROV_LEAF = "oem-prov-leaf"
    CSMS_ROOT = "csms-root"
    CSMS_SUB = "csms-sub"
    CSMS_SERVER = "csms-server"
    STATION_CLIENT = "station-client"
    OCSP_SIGNER = "ocsp-signer"


class Generation(enum.StrEnum):
    """Which standard a profile follows; ISO 15118-2 and -20 differ in curves, hashes and size limits."""

    ISO15118_2 = "iso15118-2"
    ISO15118_20 = "iso15118-20"
    OCPP = "ocpp"


class CnRule(enum.StrEnum):
    """How the subject CN of a leaf is validated (see :mod:`pki.csr_policy`)."""

    ANY = "any"
    EVSE_OR_SECC_ID = "evse-or-secc-id"
    EMAID = "emaid"
    PCID = "pcid"
    STATION_SERIAL = "station-serial"
    FQDN = "fqdn"


OCSP_NOCHECK = ObjectIdentifier("1.3.6.1.5.5.7.48.1.5")


@dataclass(frozen=True)
class KeyUsageFlags:
    digital_signature: bool = False
    content_commitment: bool = False
    key_encipherment: bool = False
    key_agreement: bool = False
    key_cert_sign: bool = False
    crl_sign: bool = False

    def extension(self) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=self.digital_signature,
            content_commitment=self.content_commitment,
            key_encipherment=self.key_encipherment,
            data_encipherment=False,
            key_agreement=self.key_agreement,
            key_cert_sign=self.key_cert_sign,
            crl_sign=self.crl_sign,
            encipher_only=False,
            decipher_only=False,
        )


CA_USAGE = KeyUsageFlags(key_cert_sign=True, crl_sign=True)


@dataclass(frozen=True)
class Profile:
    """What a certificate of one kind and generation looks like."""

    kind: CertKind
    generation: Generation
    is_ca: bool
    path_length: int | None
    key_usage: KeyUsageFlags
    key_algorithms: frozenset[KeyAlgorithm]
    default_validity_days: int
    max_validity_days: int
    domain_component: str | None = None
    extended_key_usage: tuple[ObjectIdentifier, ...] = ()
    max_der_size: int | None = None
    aia: bool = True
    crl_distribution_point: bool = False
    cn_rule: CnRule = CnRule.ANY
    ocsp_nocheck: bool = False
    issuer_kind: CertKind | None = None  # the CA kind that issues this kind (None: self-signed root)
    description: str = ""
    allowed_subject_attributes: frozenset[str] = field(
        default_factory=lambda: frozenset({"CN", "O", "OU", "C", "DC", "L", "ST"})
    )
    required_subject_attributes: frozenset[str] = frozenset({"CN"})

    @property
    def is_root(self) -> bool:
        return self.is_ca and self.issuer_kind is None

    def key_usage_for(self, key_algorithm: KeyAlgorithm) -> x509.KeyUsage:
        """RSA keys encipher (TLS RSA key transport), EC keys agree; a leaf gets the one that fits its key."""
        flags = self.key_usage
        if not self.is_ca and self.kind in {CertKind.STATION_CLIENT, CertKind.CSMS_SERVER}:
            flags = KeyUsageFlags(
                digital_signature=True,
                key_encipherment=key_algorithm.is_rsa,
                key_agreement=not key_algorithm.is_rsa and key_algorithm is not KeyAlgorithm.ED448,
            )
        return flags.extension()


SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
OCSP_SIGNING = ExtendedKeyUsageOID.OCSP_SIGNING
