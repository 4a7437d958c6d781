"""Pure-Python, schema-informed ISO 15118 EXI codec, byte-exact against EXIficient.

Public API (see docs/iso15118-exi.md)::

    encode_message(message, namespace) -> bytes          # full V2G_Message (-2) / message (-20)
    decode_message(data, namespace) -> Tree              # the tree (Josev-JSON shape, bytes for binary)
    decode_model(data, namespace) -> model               # typed model for the certificate messages
    encode_fragment(name, value, namespace) -> bytes     # EXI fragment of one element (signature digests)
    decode_fragment(data, namespace) -> list[(name, value)]
    encode_signed_info(signed_info) -> bytes             # SignedInfo, xmldsig-only fragment grammar
    fragment_digest(name, value, namespace) -> bytes     # SHA-256 over encode_fragment(...)

Signing a -2 CertificateInstallationRes (what the contract-certificate service does)::

    digests = {
        "id1": fragment_digest("ContractSignatureCertChain", res.contract_signature_cert_chain, NS_ISO2),
        "id2": fragment_digest(
            "ContractSignatureEncryptedPrivateKey", res.contract_signature_encrypted_private_key, NS_ISO2
        ),
        "id3": fragment_digest("DHpublickey", res.dh_public_key, NS_ISO2),
        "id4": fragment_digest("eMAID", res.emaid, NS_ISO2),
    }
    si = SignedInfo(tuple(Reference(f"#{i}", d) for i, d in digests.items()))
    signature_value = raw_r_s(ecdsa_sha256(cps_key, encode_signed_info(si)))
    exi = encode_message(V2GMessage(session_id, res, Signature(si, signature_value)), NS_ISO2)
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from pki.iso15118.exi import codec
from pki.iso15118.exi.errors import ExiBaseError, ExiError
from pki.iso15118.exi.models import (
    CertificateChain,
    CertificateInstallationReq,
    CertificateInstallationReq20,
    CertificateInstallationRes,
    CertificateInstallationRes20,
    CertificateUpdateReq,
    CertificateUpdateRes,
    Emaid,
    ExiValidationError,
    Header20,
    IdBytes,
    Reference,
    Signature,
    SignedInfo,
    SignedInstallationData,
    V2GMessage,
    X509IssuerSerial,
    chain20,
)

NS_ISO2 = "urn:iso:15118:2:2013:MsgDef"
NS_ISO20 = "urn:iso:std:iso:15118:-20:CommonMessages"
NS_XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"

_SCHEMAS = {NS_ISO2: "iso2", NS_ISO20: "iso20", NS_XMLDSIG: "xmldsig"}

Tree = dict[str, Any]


class _HasTree(Protocol):
    def to_tree(self) -> Any: ...


def _grammars(namespace: str) -> codec.Grammars:
    name = _SCHEMAS.get(namespace)
    if name is None:
        raise ExiError(f"unsupported namespace {namespace!r} (supported: {', '.join(_SCHEMAS)})")
    return codec.grammars(name)


def _tree(value: Any) -> Any:
    return value.to_tree() if hasattr(value, "to_tree") else value


def encode_message(message: _HasTree | Tree, namespace: str) -> bytes:
    """Encode a complete EXI document: a -2 ``V2G_Message`` or a -20 CommonMessages message."""
    return codec.encode_document(_grammars(namespace), _tree(message))


def decode_message(data: bytes, namespace: str) -> Tree:
    """Decode a complete EXI document into a tree; raises :class:`ExiError` on any defect."""
    return codec.decode_document(_grammars(namespace), data)


def decode_model(data: bytes, namespace: str) -> Any:
    """Decode into the typed model (V2GMessage for -2, the -20 certificate messages)."""
    tree = decode_message(data, namespace)
    try:
        if namespace == NS_ISO2:
            return V2GMessage.from_tree(tree)
        if "CertificateInstallationReq" in tree:
            return CertificateInstallationReq20.from_tree(tree)
        if "CertificateInstallationRes" in tree:
            return CertificateInstallationRes20.from_tree(tree)
    except (KeyError, StopIteration) as exc:
        raise ExiValidationError(f"decoded message lacks {exc}") from exc
    raise ExiValidationError(f"no model for {next(iter(tree))}")


def encode_fragment(name: str, value: Any, namespace: str) -> bytes:
    """EXI fragment (§8.5.2) holding one element, e.g. what a ds:Reference digest covers.

    Elements declared with several types (the -2 ``eMAID``) use the relaxed element fragment
    grammar (§8.5.3), as EXIficient does.
    """
    return codec.encode_fragment(_grammars(namespace), [(name, _tree(value))])


def decode_fragment(data: bytes, namespace: str) -> list[tuple[str, Any]]:
    return codec.decode_fragment(_grammars(namespace), data)


def encode_signed_info(signed_info: SignedInfo | Tree) -> bytes:
    """ds:SignedInfo as an EXI fragment with the xmldsig-only grammar (ISO 15118-2 Annex J.4)."""
    return codec.encode_fragment(codec.grammars("xmldsig"), [("SignedInfo", _tree(signed_info))])


def fragment_digest(name: str, value: Any, namespace: str) -> bytes:
    """SHA-256 of :func:`encode_fragment` — the DigestValue of a ds:Reference to that element."""
    return hashlib.sha256(encode_fragment(name, value, namespace)).digest()


__all__ = [
    "NS_ISO2",
    "NS_ISO20",
    "NS_XMLDSIG",
    "CertificateChain",
    "CertificateInstallationReq",
    "CertificateInstallationReq20",
    "CertificateInstallationRes",
    "CertificateInstallationRes20",
    "CertificateUpdateReq",
    "CertificateUpdateRes",
    "Emaid",
    "ExiBaseError",
    "ExiError",
    "ExiValidationError",
    "Header20",
    "IdBytes",
    "Reference",
    "Signature",
    "SignedInfo",
    "SignedInstallationData",
    "V2GMessage",
    "X509IssuerSerial",
    "chain20",
    "decode_fragment",
    "decode_message",
    "decode_model",
    "encode_fragment",
    "encode_message",
    "encode_signed_info",
    "fragment_digest",
]
