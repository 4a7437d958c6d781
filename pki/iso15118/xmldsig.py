"""The EXI codec seam and XML-DSig over EXI (ISO 15118-2 Annex J; -20 analogous).

The contract domain never touches EXI bytes itself: it builds and reads *trees* in the shape of the pure-Python
codec on the ``exi`` branch (``pki.iso15118.exi``: the Josev/EXIficient JSON shape with ``bytes`` for binary
values, ``{"Id": ..., "value": ...}`` for Id-carrying simple content, lists for repeated elements) and asks an
:class:`ExiCodec` for the bytes that digests and signatures cover:

* each ds:Reference digest = SHA-256 (SHA-512 in -20 when announced) of the EXI *fragment* of the referenced
  element (:meth:`ExiCodec.encode_fragment`);
* SignatureValue = ECDSA over the EXI fragment of SignedInfo encoded with the xmldsig grammar alone
  (:meth:`ExiCodec.encode_signed_info`), transmitted as raw r||s (64 bytes for P-256, 132 for P-521), or pure
  Ed448 (114 bytes).

``pki.iso15118.exi`` satisfies :class:`ExiCodec` as a module; :func:`load_exi_codec` returns it when present.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from pki.errors import PkiError

C14N_EXI = "http://www.w3.org/TR/canonical-exi/"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
EDDSA_ED448 = "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed448"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
_DIGESTS = {SHA256: hashlib.sha256, SHA512: hashlib.sha512}

Tree = dict[str, Any]


class ExiCodec(Protocol):
    """What the contract service needs from an ISO 15118 EXI codec (names as in ``pki.iso15118.exi``)."""

    def encode_message(self, message: Any, namespace: str) -> bytes: ...

    def decode_message(self, data: bytes, namespace: str) -> Tree: ...

    def encode_fragment(self, name: str, value: Any, namespace: str) -> bytes: ...

    def encode_signed_info(self, signed_info: Any) -> bytes: ...


def load_exi_codec() -> ExiCodec | None:
    """The pure-Python codec when it is part of this build, else ``None`` (the service then answers Failed)."""
    try:
        module = importlib.import_module("pki.iso15118.exi")
    except ImportError:
        return None
    needed = ("encode_message", "decode_message", "encode_fragment", "encode_signed_info")
    if not all(callable(getattr(module, n, None)) for n in needed):
        return None
    return cast(ExiCodec, module)


class SignatureFailure(PkiError):
    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message, code="FAILED_SignatureError")


@dataclass(frozen=True)
class SignedElement:
    """One element a signature references: its Id, element name and tree (the tree includes the ``Id``)."""

    id: str
    name: str
    tree: Any


def _signature_method(key: Any) -> tuple[str, str]:
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return EDDSA_ED448, SHA512
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1":
        return ECDSA_SHA512, SHA512
    return ECDSA_SHA256, SHA256


def signed_info_tree(references: Sequence[tuple[str, bytes]], *, signature_method: str = ECDSA_SHA256,
                     digest_method: str = SHA256) -> Tree:
    return {
        "CanonicalizationMethod": {"Algorithm": C14N_EXI},
        "SignatureMethod": {"Algorithm": signature_method},
        "Reference": [
            {"URI": f"#{ref_id}", "Transforms": {"Transform": [{"Algorithm": C14N_EXI}]},
             "DigestMethod": {"Algorithm": digest_method}, "DigestValue": digest}
            for ref_id, digest in references
        ],
    }


def sign(codec: ExiCodec, elements: Sequence[SignedElement], key: Any, namespace: str) -> Tree:
    """Build the ds:Signature tree over ``elements`` with ``key`` (the CPS leaf key)."""
    method, digest_method = _signature_method(key)
    h = _DIGESTS[digest_method]
    refs = [(e.id, h(codec.encode_fragment(e.name, e.tree, namespace)).digest()) for e in elements]
    si = signed_info_tree(refs, signature_method=method, digest_method=digest_method)
    data = codec.encode_signed_info(si)
    if isinstance(key, ed448.Ed448PrivateKey):
        value = key.sign(data)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        algo = hashes.SHA512() if method == ECDSA_SHA512 else hashes.SHA256()
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algo)))
        value = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        raise PkiError("the signing key must be EC or Ed448")
    return {"SignedInfo": si, "SignatureValue": {"value": value}}


def verify(codec: ExiCodec, signature: Tree, elements: Sequence[SignedElement], public_key: Any,
           namespace: str) -> None:
    """Check a received ds:Signature: every expected element referenced with a matching digest, then the value.

    Raises :class:`SignatureFailure` (ResponseCode FAILED_SignatureError) on any mismatch.
    """
    try:
        si = signature["SignedInfo"]
        value: bytes = signature["SignatureValue"]["value"]
        refs = si["Reference"]
        method = si["SignatureMethod"]["Algorithm"]
    except (KeyError, TypeError):
        raise SignatureFailure("the request signature is incomplete") from None
    by_uri = {r.get("URI"): r for r in refs if isinstance(r, dict)}
    for e in elements:
        ref = by_uri.get(f"#{e.id}")
        if ref is None:
            raise SignatureFailure(f"the signature does not reference {e.name} (#{e.id})")
        h = _DIGESTS.get(ref.get("DigestMethod", {}).get("Algorithm"))
        if h is None:
            raise SignatureFailure(f"unsupported digest method for {e.name}")
        digest = h(codec.encode_fragment(e.name, e.tree, namespace)).digest()
        if not hmac.compare_digest(digest, bytes(ref.get("DigestValue", b""))):
            raise SignatureFailure(f"digest of {e.name} does not match the signed digest")
    data = codec.encode_signed_info(si)
    try:
        if isinstance(public_key, ed448.Ed448PublicKey):
            if method != EDDSA_ED448:
                raise SignatureFailure("signature method does not match the Ed448 key")
            public_key.verify(value, data)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            size = (public_key.curve.key_size + 7) // 8
            expected = ECDSA_SHA512 if public_key.curve.name == "secp521r1" else ECDSA_SHA256
            if method != expected or len(value) != 2 * size:
                raise SignatureFailure("signature method or length does not match the signer's key")
            der = encode_dss_signature(int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big"))
            algo = hashes.SHA512() if method == ECDSA_SHA512 else hashes.SHA256()
            public_key.verify(der, data, ec.ECDSA(algo))
        else:
            raise SignatureFailure("the signer's key type cannot sign ISO 15118 messages")
    except InvalidSignature:
        raise SignatureFailure("the request signature does not verify with the signer's certificate") from None
