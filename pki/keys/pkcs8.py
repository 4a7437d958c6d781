"""Encrypted PKCS#8 with a memory-hard KDF: PBES2 + scrypt (RFC 8018, RFC 7914 §7) + AES-256-CBC.

Why not ``BestAvailableEncryption``: in cryptography 50 it writes PBES2 with PBKDF2-HMAC-SHA256 at 2048 iterations,
far below current guidance (OWASP: 600,000 for PBKDF2-SHA256), and ``encryption_builder()`` does not support
PKCS#8. The format written here is standard: ``openssl pkcs8`` and cryptography's ``load_pem_private_key`` read it.

The salt is per key store (``<dir>/.kdf``), the IV per file, so a process derives the key-encryption key once
(~0.25 s at N=2^15) instead of once per CA key; an attacker cracking the passphrase of one file has it for all
files of that store anyway, since they share the passphrase.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from asn1crypto.core import Integer, ObjectIdentifier, OctetString, Sequence
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

PBES2 = "1.2.840.113549.1.5.13"
SCRYPT = "1.3.6.1.4.1.11591.4.11"
AES256_CBC = "2.16.840.1.101.3.4.1.42"
PEM_LABEL = "ENCRYPTED PRIVATE KEY"


class _ScryptParams(Sequence):  # type: ignore[misc]
    _fields = [("salt", OctetString), ("cost", Integer), ("block_size", Integer), ("parallelization", Integer),
               ("key_length", Integer, {"optional": True})]


class _Algorithm(Sequence):  # type: ignore[misc]
    _fields = [("algorithm", ObjectIdentifier), ("parameters", Sequence, {"optional": True})]


class _KdfAlgorithm(Sequence):  # type: ignore[misc]
    _fields = [("algorithm", ObjectIdentifier), ("parameters", _ScryptParams)]


class _CipherAlgorithm(Sequence):  # type: ignore[misc]
    _fields = [("algorithm", ObjectIdentifier), ("parameters", OctetString)]


class _Pbes2Params(Sequence):  # type: ignore[misc]
    _fields = [("kdf", _KdfAlgorithm), ("cipher", _CipherAlgorithm)]


class _Pbes2Algorithm(Sequence):  # type: ignore[misc]
    _fields = [("algorithm", ObjectIdentifier), ("parameters", _Pbes2Params)]


class _EncryptedPrivateKeyInfo(Sequence):  # type: ignore[misc]
    _fields = [("algorithm", _Pbes2Algorithm), ("data", OctetString)]


@dataclass(frozen=True)
class ScryptKdf:
    salt: bytes
    log2_n: int = 15
    r: int = 8
    p: int = 1

    def derive(self, passphrase: bytes) -> bytes:
        return Scrypt(salt=self.salt, length=32, n=1 << self.log2_n, r=self.r, p=self.p).derive(passphrase)


def encrypt(pkcs8_der: bytes, kdf: ScryptKdf, kek: bytes) -> bytes:
    """PEM ``ENCRYPTED PRIVATE KEY`` of an unencrypted PKCS#8 DER, under a key derived with ``kdf``."""
    iv = os.urandom(16)
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(pkcs8_der) + padder.finalize()
    enc = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    ciphertext = enc.update(padded) + enc.finalize()
    info = _EncryptedPrivateKeyInfo({
        "algorithm": {"algorithm": PBES2, "parameters": {
            "kdf": {"algorithm": SCRYPT, "parameters": {"salt": kdf.salt, "cost": 1 << kdf.log2_n,
                                                         "block_size": kdf.r, "parallelization": kdf.p,
                                                         "key_length": 32}},
            "cipher": {"algorithm": AES256_CBC, "parameters": iv},
        }},
        "data": ciphertext,
    })
    import base64

    b64 = base64.encodebytes(info.dump()).decode().replace("\n", "")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return (f"-----BEGIN {PEM_LABEL}-----\n" + "\n".join(lines) + f"\n-----END {PEM_LABEL}-----\n").encode()


def parse(pem: bytes) -> tuple[ScryptKdf, bytes, bytes] | None:
    """``(kdf, iv, ciphertext)`` when ``pem`` is PBES2/scrypt/AES-256-CBC; ``None`` for any other format."""
    import base64

    text = pem.decode("ascii", "replace")
    begin, end = f"-----BEGIN {PEM_LABEL}-----", f"-----END {PEM_LABEL}-----"
    if begin not in text or end not in text:
        return None
    try:
        der = base64.b64decode(text.split(begin, 1)[1].split(end, 1)[0])
        info = _EncryptedPrivateKeyInfo.load(der)
        alg = info["algorithm"]
        if alg["algorithm"].dotted != PBES2:
            return None
        params = alg["parameters"]
        if params["kdf"]["algorithm"].dotted != SCRYPT or params["cipher"]["algorithm"].dotted != AES256_CBC:
            return None
        sp = params["kdf"]["parameters"]
        n = int(sp["cost"].native)
        if n < 2 or n & (n - 1):
            return None
        kdf = ScryptKdf(bytes(sp["salt"].native), n.bit_length() - 1, int(sp["block_size"].native),
                        int(sp["parallelization"].native))
        return kdf, bytes(params["cipher"]["parameters"].native), bytes(info["data"].native)
    except (ValueError, TypeError, KeyError):
        return None


def decrypt(iv: bytes, ciphertext: bytes, kek: bytes) -> bytes:
    """The PKCS#8 DER; raises ``ValueError`` on a wrong key (bad padding) or corrupt data."""
    dec = Cipher(algorithms.AES(kek), modes.CBC(iv)).decryptor()
    padded = dec.update(ciphertext) + dec.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()
