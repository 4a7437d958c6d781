"""PKCS#11 key store: CA keys generated inside a token (HSM, SoftHSM2 in tests) and never exported.

URI form (a subset of RFC 7512): ``pkcs11:token=<token label>;object=<key label>``. The module path and the user PIN
come from configuration (``PNC_PKCS11_MODULE``, ``PNC_PKCS11_PIN`` / ``PNC_PKCS11_PIN_FILE``), never from a key URI
(URIs are stored in the database and shown in listings; a PIN there would leak).

Keys are created with ``CKA_TOKEN``, ``CKA_PRIVATE``, ``CKA_SENSITIVE`` set and ``CKA_EXTRACTABLE`` cleared, so the
token refuses to reveal or wrap them. The signers returned here are subclasses of cryptography's private-key ABCs
whose ``sign`` calls into the token; cryptography's certificate, CRL and OCSP builders therefore accept them as
they accept software keys. Tokens such as SoftHSM2 do not implement ``CKM_ECDSA_SHA256``: we hash in Python, sign
the digest with plain ``CKM_ECDSA`` and convert the raw ``r || s`` result to the DER form X.509 needs.

A PKCS#11 session must not run two operations at once, so each token has one logged-in session guarded by a lock;
signing is microseconds on an HSM, so the lock is not the bottleneck of issuance (the database is).
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import pkcs11
from asn1crypto.core import ObjectIdentifier, OctetString
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, padding, rsa, utils
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key
from typing_extensions import Buffer

from pki.errors import KeyStoreError
from pki.keys.base import KeyAlgorithm, Signer

T = TypeVar("T")

_CURVES = {KeyAlgorithm.P256: "secp256r1", KeyAlgorithm.P384: "secp384r1", KeyAlgorithm.P521: "secp521r1"}
_ED448_OID = "1.3.101.113"
_RSA_MECH = {"sha256": Mechanism.SHA256_RSA_PKCS, "sha384": Mechanism.SHA384_RSA_PKCS,
             "sha512": Mechanism.SHA512_RSA_PKCS}
_PRIVATE_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}
_PUBLIC_TEMPLATE = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False}


def parse_uri(uri: str) -> dict[str, str]:
    """``pkcs11:token=a;object=b`` -> ``{"token": "a", "object": "b"}`` (percent-decoded, RFC 7512 path part)."""
    if not uri.startswith("pkcs11:"):
        raise KeyStoreError(f"not a pkcs11 key URI: {uri!r}")
    path = uri[len("pkcs11:"):].split("?", 1)[0]
    attrs: dict[str, str] = {}
    for part in path.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise KeyStoreError(f"malformed pkcs11 URI {uri!r}")
        attrs[key] = urllib.parse.unquote(value)
    if "object" not in attrs:
        raise KeyStoreError(f"pkcs11 URI {uri!r} names no object")
    return attrs


def make_uri(token: str, label: str) -> str:
    q = urllib.parse.quote
    return f"pkcs11:token={q(token, safe='')};object={q(label, safe='')}"


def open_session(token: Any, pin: str) -> Any:
    """A read-write session, logged in. Login state is per process and token in PKCS#11: when another session of
    this process is already logged in, a new session shares that login and must not log in again."""
    try:
        return token.open(rw=True, user_pin=pin)
    except pkcs11.exceptions.UserAlreadyLoggedIn:
        return token.open(rw=True)


class Pkcs11KeyStore:
    """One PKCS#11 module; tokens are selected by label (the configured one by default)."""

    scheme = "pkcs11"

    def __init__(self, module: str, token_label: str, pin: str) -> None:
        if not pin:
            raise KeyStoreError("the pkcs11 key store needs a user PIN (PNC_PKCS11_PIN or PNC_PKCS11_PIN_FILE)")
        self.module = module
        self.token_label = token_label
        self._pin = pin
        self._lib: Any = None
        self._sessions: dict[str, Any] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:  # never the PIN
        return f"Pkcs11KeyStore(module={self.module!r}, token={self.token_label!r})"

    # --- sessions ----------------------------------------------------------------------------------------

    def _session(self, token_label: str) -> Any:
        session = self._sessions.get(token_label)
        if session is not None:
            return session
        try:
            if self._lib is None:
                self._lib = pkcs11.lib(self.module)
            session = open_session(self._lib.get_token(token_label=token_label), self._pin)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            # python-pkcs11's messages never contain the PIN, but keep ours to the class name anyway.
            raise KeyStoreError(f"cannot open a session on pkcs11 token {token_label!r} ({type(exc).__name__})") \
                from None
        self._sessions[token_label] = session
        return session

    def run(self, token_label: str, op: Callable[[Any], T], what: str) -> T:
        """Run ``op(session)`` under the store lock; token errors become :class:`KeyStoreError`."""
        with self._lock:
            session = self._session(token_label)
            try:
                return op(session)
            except KeyStoreError:
                raise
            except pkcs11.PKCS11Error as exc:
                if isinstance(exc, pkcs11.exceptions.SessionHandleInvalid | pkcs11.exceptions.SessionClosed |
                              pkcs11.exceptions.DeviceRemoved | pkcs11.exceptions.TokenNotPresent):
                    self._sessions.pop(token_label, None)  # reopen on the next call
                raise KeyStoreError(f"pkcs11 {what} failed ({type(exc).__name__})") from None

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                try:
                    session.close()
                except pkcs11.PKCS11Error:
                    pass
            self._sessions.clear()

    # --- KeyStore protocol -------------------------------------------------------------------------------

    def generate(self, label: str, algorithm: KeyAlgorithm) -> str:
        if not label or len(label) > 128:
            raise KeyStoreError(f"invalid key label {label!r}")

        def op(session: Any) -> None:
            if list(session.get_objects({Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
                raise KeyStoreError(f"token {self.token_label!r} already holds a key labelled {label!r}")
            common = {"store": True, "label": label, "id": label.encode(),
                      "private_template": _PRIVATE_TEMPLATE, "public_template": _PUBLIC_TEMPLATE}
            if algorithm in _CURVES:
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[algorithm])}, local=True)
                params.generate_keypair(**common)
            elif algorithm is KeyAlgorithm.ED448:
                params = session.create_domain_parameters(
                    KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: ObjectIdentifier(_ED448_OID).dump()}, local=True)
                params.generate_keypair(mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN, **common)
            else:
                session.generate_keypair(KeyType.RSA, int(algorithm.value.split("-")[1]), **common)

        self.run(self.token_label, op, "key generation")
        return make_uri(self.token_label, label)

    def _keys(self, uri: str) -> tuple[str, str, Any, Any]:
        attrs = parse_uri(uri)
        token, label = attrs.get("token", self.token_label), attrs["object"]

        def op(session: Any) -> tuple[Any, Any]:
            try:
                priv = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
                pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
            except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
                raise KeyStoreError(f"key {uri!r} not found (or not unique) on its token") from None
            return priv, pub

        priv, pub = self.run(token, op, "key lookup")
        return token, label, priv, pub

    def signer(self, uri: str) -> Signer:
        token, _label, priv, pub = self._keys(uri)
        key_type = priv.key_type
        if key_type == KeyType.EC:
            public = self.run(token, lambda _s: encode_ec_public_key(pub), "public key read")
            ec_public = serialization.load_der_public_key(public)
            assert isinstance(ec_public, ec.EllipticCurvePublicKey)
            return Pkcs11EcKey(self, token, uri, priv, ec_public)
        if key_type == KeyType.EC_EDWARDS:
            point = self.run(token, lambda _s: pub[Attribute.EC_POINT], "public key read")
            raw = bytes(OctetString.load(point).native) if point[:1] == b"\x04" else bytes(point)
            return Pkcs11Ed448Key(self, token, uri, priv, ed448.Ed448PublicKey.from_public_bytes(raw))
        if key_type == KeyType.RSA:
            public = self.run(token, lambda _s: encode_rsa_public_key(pub), "public key read")
            rsa_public = serialization.load_der_public_key(public)
            assert isinstance(rsa_public, rsa.RSAPublicKey)
            return Pkcs11RsaKey(self, token, uri, priv, rsa_public)
        raise KeyStoreError(f"key {uri!r} has an unsupported type")

    def delete(self, uri: str) -> None:
        attrs = parse_uri(uri)

        def op(session: Any) -> None:
            for obj in list(session.get_objects({Attribute.LABEL: attrs["object"]})):
                obj.destroy()

        self.run(attrs.get("token", self.token_label), op, "key deletion")


def _refuse(uri: str) -> NoReturn:
    raise KeyStoreError(f"key {uri!r} lives in a PKCS#11 token and cannot be exported")


def _digest(data: Buffer, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> bytes:
    if isinstance(algorithm, utils.Prehashed):
        return bytes(data)
    h = hashes.Hash(algorithm)
    h.update(bytes(data))
    return h.finalize()


class Pkcs11EcKey(ec.EllipticCurvePrivateKey):
    """ECDSA in the token: the digest is computed here, the token signs it with CKM_ECDSA."""

    def __init__(self, store: Pkcs11KeyStore, token: str, uri: str, handle: Any,
                 public: ec.EllipticCurvePublicKey) -> None:
        self._store, self._token, self.uri, self._handle, self._public = store, token, uri, handle, public

    def __repr__(self) -> str:
        return f"<Pkcs11EcKey {self.uri}>"

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise KeyStoreError("only ECDSA is supported")
        digest = _digest(data, signature_algorithm.algorithm)
        raw: bytes = self._store.run(self._token, lambda _s: self._handle.sign(digest, mechanism=Mechanism.ECDSA),
                                     "ECDSA signature")
        half = len(raw) // 2
        return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise KeyStoreError("CA keys are for signing only")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _refuse(self.uri)

    def private_bytes(self, encoding: serialization.Encoding, format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        _refuse(self.uri)

    def __copy__(self) -> Pkcs11EcKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11EcKey:
        return self


class Pkcs11Ed448Key(ed448.Ed448PrivateKey):
    """Ed448 (PureEdDSA) in the token with CKM_EDDSA; the token hashes, as EdDSA requires."""

    def __init__(self, store: Pkcs11KeyStore, token: str, uri: str, handle: Any,
                 public: ed448.Ed448PublicKey) -> None:
        self._store, self._token, self.uri, self._handle, self._public = store, token, uri, handle, public

    def __repr__(self) -> str:
        return f"<Pkcs11Ed448Key {self.uri}>"

    def sign(self, data: Buffer) -> bytes:
        message = bytes(data)
        sig: bytes = self._store.run(self._token, lambda _s: self._handle.sign(message, mechanism=Mechanism.EDDSA),
                                     "EdDSA signature")
        return sig

    def public_key(self) -> ed448.Ed448PublicKey:
        return self._public

    def private_bytes(self, encoding: serialization.Encoding, format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        _refuse(self.uri)

    def private_bytes_raw(self) -> bytes:
        _refuse(self.uri)

    def __copy__(self) -> Pkcs11Ed448Key:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11Ed448Key:
        return self


class Pkcs11RsaKey(rsa.RSAPrivateKey):
    """RSA PKCS#1 v1.5 in the token (CKM_SHA*_RSA_PKCS); PSS is not offered by our profiles."""

    def __init__(self, store: Pkcs11KeyStore, token: str, uri: str, handle: Any, public: rsa.RSAPublicKey) -> None:
        self._store, self._token, self.uri, self._handle, self._public = store, token, uri, handle, public

    def __repr__(self) -> str:
        return f"<Pkcs11RsaKey {self.uri}>"

    def sign(self, data: Buffer, padding: padding.AsymmetricPadding,
             algorithm: hashes.HashAlgorithm | utils.Prehashed | utils.NoDigestInfo) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

        message = bytes(data)
        if not isinstance(padding, PKCS1v15) or not isinstance(algorithm, hashes.HashAlgorithm):
            raise KeyStoreError("only RSA PKCS#1 v1.5 over unhashed data is supported by the pkcs11 store")
        mechanism = _RSA_MECH.get(algorithm.name)
        if mechanism is None:
            raise KeyStoreError(f"unsupported RSA hash {algorithm.name}")
        sig: bytes = self._store.run(self._token, lambda _s: self._handle.sign(message, mechanism=mechanism),
                                     "RSA signature")
        return sig

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        raise KeyStoreError("CA keys are for signing only")

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _refuse(self.uri)

    def private_bytes(self, encoding: serialization.Encoding, format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        _refuse(self.uri)

    def __copy__(self) -> Pkcs11RsaKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11RsaKey:
        return self
