"""The key-store seam."""

from __future__ import annotations

import enum
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PublicKeyTypes

from pki.errors import KeyStoreError

Signer = CertificateIssuerPrivateKeyTypes


class KeyAlgorithm(enum.StrEnum):
    """Key algorithms the profiles use. Values are stable identifiers stored in the database."""

    P256 = "ec-p256"
    P384 = "ec-p384"
    P521 = "ec-p521"
    ED448 = "ed448"
    RSA2048 = "rsa-2048"
    RSA3072 = "rsa-3072"
    RSA4096 = "rsa-4096"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa-")


def public_key_algorithm(key: PublicKeyTypes) -> KeyAlgorithm | None:
    """Classify a public key; ``None`` for anything we never issue for (P-192, DSA, Ed25519, ...)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {
            "secp256r1": KeyAlgorithm.P256,
            "secp384r1": KeyAlgorithm.P384,
            "secp521r1": KeyAlgorithm.P521,
        }.get(key.curve.name)
    if isinstance(key, ed448.Ed448PublicKey):
        return KeyAlgorithm.ED448
    if isinstance(key, rsa.RSAPublicKey):
        return {2048: KeyAlgorithm.RSA2048, 3072: KeyAlgorithm.RSA3072, 4096: KeyAlgorithm.RSA4096}.get(key.key_size)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return None
    return None


class KeyStore(Protocol):
    """One back end (a scheme). ``generate`` creates a key inside the store and returns its URI."""

    scheme: str

    def generate(self, label: str, algorithm: KeyAlgorithm) -> str: ...

    def signer(self, uri: str) -> Signer: ...

    def delete(self, uri: str) -> None: ...


class KeyManager:
    """Dispatches key URIs to the store registered for their scheme, and caches loaded signers.

    Caching matters: decrypting a PKCS#8 file (a deliberately slow KDF) per signature would cost milliseconds.
    """

    def __init__(self, default_scheme: str = "file") -> None:
        self._stores: dict[str, KeyStore] = {}
        self._cache: dict[str, Signer] = {}
        self.default_scheme = default_scheme

    def register(self, store: KeyStore) -> None:
        self._stores[store.scheme] = store

    def store_for(self, uri_or_scheme: str) -> KeyStore:
        scheme = uri_or_scheme.split(":", 1)[0]
        try:
            return self._stores[scheme]
        except KeyError:
            raise KeyStoreError(f"no key store registered for scheme {scheme!r}") from None

    def generate(self, label: str, algorithm: KeyAlgorithm, *, scheme: str | None = None) -> str:
        return self.store_for(scheme or self.default_scheme).generate(label, algorithm)

    def signer(self, uri: str) -> Signer:
        cached = self._cache.get(uri)
        if cached is None:
            cached = self.store_for(uri).signer(uri)
            self._cache[uri] = cached
        return cached

    def delete(self, uri: str) -> None:
        self._cache.pop(uri, None)
        self.store_for(uri).delete(uri)


def new_private_key(algorithm: KeyAlgorithm) -> Signer:
    """Generate a software key (file store, and leaf keys the service itself creates, e.g. contract keys)."""
    if algorithm is KeyAlgorithm.P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm is KeyAlgorithm.P384:
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm is KeyAlgorithm.P521:
        return ec.generate_private_key(ec.SECP521R1())
    if algorithm is KeyAlgorithm.ED448:
        return ed448.Ed448PrivateKey.generate()
    bits = int(algorithm.value.split("-")[1])
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)
