"""Typed models of the ISO 15118 certificate messages, with the XSD facets enforced.

Frozen dataclasses (no pydantic at this layer: they sit on the hot path of the codec and only need
facet checks).  Each model converts to/from the codec's tree shape with ``to_tree()`` /
``from_tree()``; construction validates, so an out-of-facet value never reaches the encoder.

Facets (ISO 15118-2 V2G_CI_MsgDataTypes.xsd / -20 V2G_CI_CommonTypes.xsd, CommonMessages.xsd):
certificates ≤ 800 bytes (-2) / ≤ 1600 bytes (-20), ≤ 4 (-2) / ≤ 3 (-20) sub-certificates, encrypted
private key 48 bytes (-2; 94/84 bytes for SECP521/X448 and at most 206 for TPM in -20), DH public key 65 bytes
(-2) / 133 bytes for SECP521 and 56 for X448 (-20: the XSD's ``length 133`` is a maximum, [V2G20-2495] forbids
padding the X448 key; see ``generate.LENGTH_AS_MAXIMUM``), eMAID 14-15 characters, 1-20 root certificate IDs,
SessionID ≤ 8 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pki.iso15118.exi.errors import ExiError


class ExiValidationError(ExiError):
    """A model value violates an XSD facet."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


def _len(name: str, value: bytes | str, lo: int | None, hi: int | None) -> None:
    n = len(value)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise ExiValidationError(f"{name}: length {n} outside [{lo}, {hi}]")


def _count(name: str, n: int, lo: int, hi: int) -> None:
    if not lo <= n <= hi:
        raise ExiValidationError(f"{name}: {n} items outside [{lo}, {hi}]")


def _opt(d: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    if value is not None:
        d[key] = value
    return d


RESPONSE_CODES_2 = (
    "OK",
    "OK_NewSessionEstablished",
    "OK_OldSessionJoined",
    "OK_CertificateExpiresSoon",
    "FAILED",
    "FAILED_SequenceError",
    "FAILED_ServiceIDInvalid",
    "FAILED_UnknownSession",
    "FAILED_ServiceSelectionInvalid",
    "FAILED_PaymentSelectionInvalid",
    "FAILED_CertificateExpired",
    "FAILED_SignatureError",
    "FAILED_NoCertificateAvailable",
    "FAILED_CertChainError",
    "FAILED_ChallengeInvalid",
    "FAILED_ContractCanceled",
    "FAILED_WrongChargeParameter",
    "FAILED_PowerDeliveryNotApplied",
    "FAILED_TariffSelectionInvalid",
    "FAILED_ChargingProfileInvalid",
    "FAILED_MeteringSignatureNotValid",
    "FAILED_NoChargeServiceSelected",
    "FAILED_WrongEnergyTransferMode",
    "FAILED_ContactorError",
    "FAILED_CertificateNotAllowedAtThisEVSE",
    "FAILED_CertificateRevoked",
)

C14N_EXI = "http://www.w3.org/TR/canonical-exi/"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


# ------------------------------------------------------------------------------------------- xmldsig
@dataclass(frozen=True)
class Reference:
    """One ds:Reference as ISO 15118 uses it: URI ``#Id``, canonical-EXI transform, SHA-256."""

    uri: str
    digest_value: bytes
    transforms: tuple[str, ...] = (C14N_EXI,)
    digest_method: str = SHA256

    def to_tree(self) -> dict[str, Any]:
        t: dict[str, Any] = {"URI": self.uri}
        if self.transforms:
            t["Transforms"] = {"Transform": [{"Algorithm": a} for a in self.transforms]}
        t["DigestMethod"] = {"Algorithm": self.digest_method}
        t["DigestValue"] = self.digest_value
        return t

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> Reference:
        tr = tuple(x["Algorithm"] for x in t.get("Transforms", {}).get("Transform", []))
        return cls(
            uri=t.get("URI", ""),
            digest_value=t["DigestValue"],
            transforms=tr,
            digest_method=t["DigestMethod"]["Algorithm"],
        )


@dataclass(frozen=True)
class SignedInfo:
    references: tuple[Reference, ...]
    canonicalization_method: str = C14N_EXI
    signature_method: str = ECDSA_SHA256

    def __post_init__(self) -> None:
        if not self.references:
            raise ExiValidationError("SignedInfo needs at least one Reference")

    def to_tree(self) -> dict[str, Any]:
        return {
            "CanonicalizationMethod": {"Algorithm": self.canonicalization_method},
            "SignatureMethod": {"Algorithm": self.signature_method},
            "Reference": [r.to_tree() for r in self.references],
        }

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> SignedInfo:
        return cls(
            references=tuple(Reference.from_tree(r) for r in t["Reference"]),
            canonicalization_method=t["CanonicalizationMethod"]["Algorithm"],
            signature_method=t["SignatureMethod"]["Algorithm"],
        )


@dataclass(frozen=True)
class Signature:
    """ds:Signature; ``signature_value`` is the raw r‖s ECDSA value (64 bytes for P-256)."""

    signed_info: SignedInfo
    signature_value: bytes

    def to_tree(self) -> dict[str, Any]:
        return {"SignedInfo": self.signed_info.to_tree(), "SignatureValue": {"value": self.signature_value}}

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> Signature:
        return cls(SignedInfo.from_tree(t["SignedInfo"]), t["SignatureValue"]["value"])


@dataclass(frozen=True)
class X509IssuerSerial:
    issuer_name: str
    serial_number: int

    def to_tree(self) -> dict[str, Any]:
        return {"X509IssuerName": self.issuer_name, "X509SerialNumber": self.serial_number}

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> X509IssuerSerial:
        return cls(t["X509IssuerName"], t["X509SerialNumber"])


def _roots_tree(roots: tuple[X509IssuerSerial, ...]) -> dict[str, Any]:
    _count("ListOfRootCertificateIDs", len(roots), 1, 20)
    return {"RootCertificateID": [r.to_tree() for r in roots]}


def _roots(t: dict[str, Any]) -> tuple[X509IssuerSerial, ...]:
    return tuple(X509IssuerSerial.from_tree(r) for r in t["RootCertificateID"])


# ------------------------------------------------------------------------------------------- ISO 15118-2
@dataclass(frozen=True)
class CertificateChain:
    """CertificateChainType (-2): leaf ≤ 800 bytes, ≤ 4 sub-certificates, optional Id."""

    certificate: bytes
    sub_certificates: tuple[bytes, ...] = ()
    id: str | None = None
    max_cert: int = field(default=800, repr=False, compare=False)
    max_subs: int = field(default=4, repr=False, compare=False)

    def __post_init__(self) -> None:
        _len("Certificate", self.certificate, None, self.max_cert)
        _count("SubCertificates", len(self.sub_certificates), 0, self.max_subs)
        for c in self.sub_certificates:
            _len("SubCertificates/Certificate", c, None, self.max_cert)

    def to_tree(self) -> dict[str, Any]:
        t: dict[str, Any] = _opt({}, "Id", self.id)
        t["Certificate"] = self.certificate
        if self.sub_certificates:
            t["SubCertificates"] = {"Certificate": list(self.sub_certificates)}
        return t

    @classmethod
    def from_tree(cls, t: dict[str, Any], max_cert: int = 800, max_subs: int = 4) -> CertificateChain:
        subs = tuple(t.get("SubCertificates", {}).get("Certificate", []))
        return cls(t["Certificate"], subs, t.get("Id"), max_cert, max_subs)


@dataclass(frozen=True)
class IdBytes:
    """An Id-carrying binary element (ContractSignatureEncryptedPrivateKey, DHpublickey)."""

    id: str
    value: bytes

    def to_tree(self) -> dict[str, Any]:
        return {"Id": self.id, "value": self.value}


@dataclass(frozen=True)
class Emaid:
    """EMAIDType: an eMAID string of 14-15 characters with the Id the signature references."""

    id: str
    value: str

    def __post_init__(self) -> None:
        _len("eMAID", self.value, 14, 15)

    def to_tree(self) -> dict[str, Any]:
        return {"Id": self.id, "value": self.value}


@dataclass(frozen=True)
class CertificateInstallationReq:
    id: str
    oem_provisioning_cert: bytes
    root_certificate_ids: tuple[X509IssuerSerial, ...]

    def __post_init__(self) -> None:
        _len("OEMProvisioningCert", self.oem_provisioning_cert, None, 800)
        _count("ListOfRootCertificateIDs", len(self.root_certificate_ids), 1, 20)

    def to_tree(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "OEMProvisioningCert": self.oem_provisioning_cert,
            "ListOfRootCertificateIDs": _roots_tree(self.root_certificate_ids),
        }

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> CertificateInstallationReq:
        return cls(t["Id"], t["OEMProvisioningCert"], _roots(t["ListOfRootCertificateIDs"]))


@dataclass(frozen=True)
class CertificateInstallationRes:
    response_code: str
    sa_provisioning_certificate_chain: CertificateChain
    contract_signature_cert_chain: CertificateChain
    contract_signature_encrypted_private_key: IdBytes
    dh_public_key: IdBytes
    emaid: Emaid

    def __post_init__(self) -> None:
        if self.response_code not in RESPONSE_CODES_2:
            raise ExiValidationError(f"ResponseCode {self.response_code!r} is not a -2 responseCodeType")
        if self.contract_signature_cert_chain.id is None:
            raise ExiValidationError("ContractSignatureCertChain needs an Id (it is signed)")
        _len(
            "ContractSignatureEncryptedPrivateKey",
            self.contract_signature_encrypted_private_key.value,
            48,
            48,
        )
        _len("DHpublickey", self.dh_public_key.value, 65, 65)

    def to_tree(self) -> dict[str, Any]:
        return {
            "ResponseCode": self.response_code,
            "SAProvisioningCertificateChain": self.sa_provisioning_certificate_chain.to_tree(),
            "ContractSignatureCertChain": self.contract_signature_cert_chain.to_tree(),
            "ContractSignatureEncryptedPrivateKey": self.contract_signature_encrypted_private_key.to_tree(),
            "DHpublickey": self.dh_public_key.to_tree(),
            "eMAID": self.emaid.to_tree(),
        }

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> CertificateInstallationRes:
        return cls(
            t["ResponseCode"],
            CertificateChain.from_tree(t["SAProvisioningCertificateChain"]),
            CertificateChain.from_tree(t["ContractSignatureCertChain"]),
            IdBytes(**_idv(t["ContractSignatureEncryptedPrivateKey"])),
            IdBytes(**_idv(t["DHpublickey"])),
            Emaid(**_idv(t["eMAID"])),
        )


def _idv(t: dict[str, Any]) -> dict[str, Any]:
    return {"id": t["Id"], "value": t["value"]}


@dataclass(frozen=True)
class CertificateUpdateReq:
    id: str
    contract_signature_cert_chain: CertificateChain
    emaid: str
    root_certificate_ids: tuple[X509IssuerSerial, ...]

    def __post_init__(self) -> None:
        _len("eMAID", self.emaid, 14, 15)
        _count("ListOfRootCertificateIDs", len(self.root_certificate_ids), 1, 20)

    def to_tree(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "ContractSignatureCertChain": self.contract_signature_cert_chain.to_tree(),
            "eMAID": self.emaid,
            "ListOfRootCertificateIDs": _roots_tree(self.root_certificate_ids),
        }

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> CertificateUpdateReq:
        return cls(
            t["Id"],
            CertificateChain.from_tree(t["ContractSignatureCertChain"]),
            t["eMAID"],
            _roots(t["ListOfRootCertificateIDs"]),
        )


@dataclass(frozen=True)
class CertificateUpdateRes(CertificateInstallationRes):
    retry_counter: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.retry_counter is not None and not -32768 <= self.retry_counter <= 32767:
            raise ExiValidationError("RetryCounter must be an xs:short")

    def to_tree(self) -> dict[str, Any]:
        return _opt(super().to_tree(), "RetryCounter", self.retry_counter)

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> CertificateUpdateRes:
        base = CertificateInstallationRes.from_tree(t)
        return cls(
            **{k: getattr(base, k) for k in base.__dataclass_fields__}, retry_counter=t.get("RetryCounter")
        )


Body2 = CertificateInstallationReq | CertificateInstallationRes | CertificateUpdateReq | CertificateUpdateRes
_BODY2: dict[str, Any] = {
    "CertificateInstallationReq": CertificateInstallationReq,
    "CertificateInstallationRes": CertificateInstallationRes,
    "CertificateUpdateReq": CertificateUpdateReq,
    "CertificateUpdateRes": CertificateUpdateRes,
}


@dataclass(frozen=True)
class V2GMessage:
    """An ISO 15118-2 V2G_Message: Header (SessionID ≤ 8 bytes, optional Signature) and Body."""

    session_id: bytes
    body: Body2
    signature: Signature | None = None

    def __post_init__(self) -> None:
        _len("SessionID", self.session_id, None, 8)

    def to_tree(self) -> dict[str, Any]:
        hdr: dict[str, Any] = {"SessionID": self.session_id}
        _opt(hdr, "Signature", self.signature.to_tree() if self.signature else None)
        return {"V2G_Message": {"Header": hdr, "Body": {type(self.body).__name__: self.body.to_tree()}}}

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> V2GMessage:
        m = t["V2G_Message"]
        ((name, value),) = m["Body"].items()
        if name not in _BODY2:
            raise ExiValidationError(f"no model for body element {name}")
        sig = m["Header"].get("Signature")
        return cls(
            m["Header"]["SessionID"], _BODY2[name].from_tree(value), Signature.from_tree(sig) if sig else None
        )


# ------------------------------------------------------------------------------------------- ISO 15118-20
_PRIV_KEY_20 = {  # element -> (min, max) octets; TPM: at most 206, no padding ([V2G20-2521])
    "SECP521_EncryptedPrivateKey": (94, 94),
    "X448_EncryptedPrivateKey": (84, 84),
    "TPM_EncryptedPrivateKey": (1, 206),
}
_DH_PUBLIC_KEY_20 = {"SECP521": 133, "X448": 56}  # uncompressed P-521 point / raw X448 u-coordinate


@dataclass(frozen=True)
class Header20:
    session_id: bytes
    timestamp: int
    signature: Signature | None = None

    def __post_init__(self) -> None:
        _len("SessionID", self.session_id, 8, 8)
        if not 0 <= self.timestamp < 2**64:
            raise ExiValidationError("TimeStamp must be an xs:unsignedLong")

    def to_tree(self) -> dict[str, Any]:
        t: dict[str, Any] = {"SessionID": self.session_id, "TimeStamp": self.timestamp}
        return _opt(t, "Signature", self.signature.to_tree() if self.signature else None)

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> Header20:
        sig = t.get("Signature")
        return cls(t["SessionID"], t["TimeStamp"], Signature.from_tree(sig) if sig else None)


def chain20(
    certificate: bytes, sub_certificates: tuple[bytes, ...] = (), id: str | None = None
) -> CertificateChain:
    """A -20 certificate chain (≤ 1600-byte certificates, ≤ 3 sub-certificates)."""
    return CertificateChain(certificate, sub_certificates, id, max_cert=1600, max_subs=3)


@dataclass(frozen=True)
class CertificateInstallationReq20:
    header: Header20
    oem_provisioning_certificate_chain: CertificateChain  # SignedCertificateChainType: Id required
    root_certificate_ids: tuple[X509IssuerSerial, ...]
    maximum_contract_certificate_chains: int
    prioritized_emaids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.oem_provisioning_certificate_chain.id is None:
            raise ExiValidationError("OEMProvisioningCertificateChain needs an Id")
        _count("ListOfRootCertificateIDs", len(self.root_certificate_ids), 1, 20)
        if not 0 <= self.maximum_contract_certificate_chains <= 255:
            raise ExiValidationError("MaximumContractCertificateChains must be an xs:unsignedByte")
        _count("PrioritizedEMAIDs", len(self.prioritized_emaids), 0, 8)
        for e in self.prioritized_emaids:
            _len("EMAID", e, None, 255)

    def to_tree(self) -> dict[str, Any]:
        t: dict[str, Any] = {
            "Header": self.header.to_tree(),
            "OEMProvisioningCertificateChain": self.oem_provisioning_certificate_chain.to_tree(),
            "ListOfRootCertificateIDs": _roots_tree(self.root_certificate_ids),
            "MaximumContractCertificateChains": self.maximum_contract_certificate_chains,
        }
        if self.prioritized_emaids:
            t["PrioritizedEMAIDs"] = {"EMAID": list(self.prioritized_emaids)}
        return {"CertificateInstallationReq": t}

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> CertificateInstallationReq20:
        m = t["CertificateInstallationReq"]
        return cls(
            Header20.from_tree(m["Header"]),
            CertificateChain.from_tree(m["OEMProvisioningCertificateChain"], 1600, 3),
            _roots(m["ListOfRootCertificateIDs"]),
            m["MaximumContractCertificateChains"],
            tuple(m.get("PrioritizedEMAIDs", {}).get("EMAID", [])),
        )


@dataclass(frozen=True)
class SignedInstallationData:
    id: str
    contract_certificate_chain: CertificateChain  # SubCertificates mandatory in -20
    ecdh_curve: str  # "SECP521" | "X448"
    dh_public_key: bytes  # 133 bytes (SECP521) or 56 bytes (X448)
    encrypted_private_key: bytes
    key_kind: str = "SECP521_EncryptedPrivateKey"

    def __post_init__(self) -> None:
        if self.ecdh_curve not in ("SECP521", "X448"):
            raise ExiValidationError("ECDHCurve must be SECP521 or X448")
        n_dh = _DH_PUBLIC_KEY_20[self.ecdh_curve]
        _len(f"DHPublicKey ({self.ecdh_curve})", self.dh_public_key, n_dh, n_dh)
        if self.key_kind not in _PRIV_KEY_20:
            raise ExiValidationError(f"unknown private key element {self.key_kind}")
        if self.key_kind != "TPM_EncryptedPrivateKey" and not self.key_kind.startswith(self.ecdh_curve):
            raise ExiValidationError(f"{self.key_kind} does not go with ECDHCurve {self.ecdh_curve}")
        lo, hi = _PRIV_KEY_20[self.key_kind]
        _len(self.key_kind, self.encrypted_private_key, lo, hi)
        if not self.contract_certificate_chain.sub_certificates:
            raise ExiValidationError("ContractCertificateChain needs SubCertificates in -20")

    def to_tree(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "ContractCertificateChain": self.contract_certificate_chain.to_tree(),
            "ECDHCurve": self.ecdh_curve,
            "DHPublicKey": self.dh_public_key,
            self.key_kind: self.encrypted_private_key,
        }

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> SignedInstallationData:
        kind = next(k for k in _PRIV_KEY_20 if k in t)
        return cls(
            t["Id"],
            CertificateChain.from_tree(t["ContractCertificateChain"], 1600, 3),
            t["ECDHCurve"],
            t["DHPublicKey"],
            t[kind],
            kind,
        )


@dataclass(frozen=True)
class CertificateInstallationRes20:
    header: Header20
    response_code: str
    evse_processing: str
    cps_certificate_chain: CertificateChain
    signed_installation_data: SignedInstallationData
    remaining_contract_certificate_chains: int

    def __post_init__(self) -> None:
        if self.evse_processing not in ("Finished", "Ongoing", "Ongoing_WaitingForCustomerInteraction"):
            raise ExiValidationError("EVSEProcessing is not a processingType value")
        if not 0 <= self.remaining_contract_certificate_chains <= 255:
            raise ExiValidationError("RemainingContractCertificateChains must be an xs:unsignedByte")

    def to_tree(self) -> dict[str, Any]:
        return {
            "CertificateInstallationRes": {
                "Header": self.header.to_tree(),
                "ResponseCode": self.response_code,
                "EVSEProcessing": self.evse_processing,
                "CPSCertificateChain": self.cps_certificate_chain.to_tree(),
                "SignedInstallationData": self.signed_installation_data.to_tree(),
                "RemainingContractCertificateChains": self.remaining_contract_certificate_chains,
            }
        }

    @classmethod
    def from_tree(cls, t: dict[str, Any]) -> CertificateInstallationRes20:
        m = t["CertificateInstallationRes"]
        return cls(
            Header20.from_tree(m["Header"]),
            m["ResponseCode"],
            m["EVSEProcessing"],
            CertificateChain.from_tree(m["CPSCertificateChain"], 1600, 3),
            SignedInstallationData.from_tree(m["SignedInstallationData"]),
            m["RemainingContractCertificateChains"],
        )
