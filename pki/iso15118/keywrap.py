"""Encryption of the contract private key for the EV (ISO 15118-2 and -20), and the EV-side decryption.

ISO 15118-2 ([V2G2-818] ff., as implemented by Josev ``security.py``; standards brief §3.2):
  ephemeral P-256 key pair; Z = ECDH(ephemeral, OEM provisioning public key); KEK = ConcatKDF (NIST SP 800-56A
  single-step) with SHA-256, 16 bytes, OtherInfo = 0x01 || 0x55 || 0x56; plaintext = the contract private scalar
  as 32 bytes big-endian; AES-128-CBC with a random IV and no padding. ContractSignatureEncryptedPrivateKey =
  IV || ciphertext (48 bytes); DHpublickey = the uncompressed ephemeral point (65 bytes).

ISO 15118-20 ([V2G20-2491] ff.): ECDHE with SECP521 (OEM key P-521) or X448 (OEM key Ed448, whose public point
is mapped to curve448), AES-GCM-256 with a random 96-bit IV, AAD = PCID (18 upper-case characters) || upper-case
hex SKI of the contract certificate, output IV || ciphertext || tag: 12 + 66 + 16 = 94 bytes (P-521 scalar padded
to 528 bits) or 12 + 56 + 16 = 84 bytes. **The session-key KDF of -20 (clause 7.9.2.5.4) was not available in
readable form**: we use ConcatKDF-SHA-256 with 32 bytes of output and the -2 OtherInfo 0x01||0x55||0x56
(:data:`KDF20`). This is an assumption that MUST be verified against the ISO 15118-20 text before production use;
it is a single constant here so that correcting it is a one-line change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from pki.errors import InvalidRequest, PolicyViolation

OTHER_INFO = b"\x01\x55\x56"  # AlgorithmID 0x01, PartyUInfo 'U', PartyVInfo 'V' ([V2G2-818])


@dataclass(frozen=True)
class Kdf20:
    """The -20 session-key derivation in use (see module docstring: unverified assumption)."""

    hash_name: str = "sha256"
    length: int = 32
    other_info: bytes = OTHER_INFO

    def derive(self, shared_secret: bytes) -> bytes:
        algorithm: hashes.HashAlgorithm = hashes.SHA512() if self.hash_name == "sha512" else hashes.SHA256()
        return ConcatKDFHash(algorithm, self.length, self.other_info).derive(shared_secret)


KDF20 = Kdf20()


def _kdf2(shared_secret: bytes) -> bytes:
    return ConcatKDFHash(hashes.SHA256(), 16, OTHER_INFO).derive(shared_secret)


# --- ISO 15118-2 --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptedKey2:
    encrypted_private_key: bytes  # IV || AES-128-CBC ciphertext, 48 bytes
    dh_public_key: bytes  # uncompressed P-256 point, 65 bytes


def encrypt_contract_key_2(contract_key: ec.EllipticCurvePrivateKey,
                           oem_public_key: object) -> EncryptedKey2:
    """Encrypt a P-256 contract key for the EV that holds the OEM provisioning key."""
    if not isinstance(oem_public_key, ec.EllipticCurvePublicKey) or oem_public_key.curve.name != "secp256r1":
        raise PolicyViolation("ISO 15118-2 key encryption needs a P-256 OEM provisioning key",
                              code="FAILED_CertChainError")
    if contract_key.curve.name != "secp256r1":
        raise PolicyViolation("ISO 15118-2 contract keys are P-256")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    kek = _kdf2(ephemeral.exchange(ec.ECDH(), oem_public_key))
    iv = os.urandom(16)
    plain = contract_key.private_numbers().private_value.to_bytes(32, "big")
    enc = Cipher(algorithms.AES128(kek), modes.CBC(iv)).encryptor()
    ct = enc.update(plain) + enc.finalize()
    dh = ephemeral.public_key().public_bytes(serialization.Encoding.X962,
                                             serialization.PublicFormat.UncompressedPoint)
    return EncryptedKey2(iv + ct, dh)


def decrypt_contract_key_2(encrypted: bytes, dh_public_key: bytes,
                           oem_private_key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePrivateKey:
    """The EV side: recover the contract key with the OEM provisioning private key."""
    if len(encrypted) != 48 or len(dh_public_key) != 65:
        raise InvalidRequest("ContractSignatureEncryptedPrivateKey must be 48 bytes and DHpublickey 65 bytes")
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), dh_public_key)
    kek = _kdf2(oem_private_key.exchange(ec.ECDH(), peer))
    dec = Cipher(algorithms.AES128(kek), modes.CBC(encrypted[:16])).decryptor()
    scalar = int.from_bytes(dec.update(encrypted[16:]) + dec.finalize(), "big")
    return ec.derive_private_key(scalar, ec.SECP256R1())


# --- ISO 15118-20 -------------------------------------------------------------------------------------------

_P448 = 2**448 - 2**224 - 1
_D448 = -39081


def ed448_public_to_x448(public_key: ed448.Ed448PublicKey) -> x448.X448PublicKey:
    """Map an Ed448 public key to the curve448 u-coordinate (RFC 7748 §4.2: u = y^2 / x^2).

    [V2G20-2491]: ECDHE public parameters are derived from the public EdDSA parameters. With x^2 from the
    edwards448 equation x^2 + y^2 = 1 + d x^2 y^2, u = y^2 (1 - d y^2) / (1 - y^2) (mod p).
    """
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    y = int.from_bytes(raw[:56], "little")  # 57th byte carries only the sign of x
    y2 = y * y % _P448
    u = y2 * (1 - _D448 * y2) % _P448 * pow((1 - y2) % _P448, -1, _P448) % _P448
    return x448.X448PublicKey.from_public_bytes(u.to_bytes(56, "little"))


def ed448_private_to_x448(private_key: ed448.Ed448PrivateKey) -> x448.X448PrivateKey:
    """The EV side of :func:`ed448_public_to_x448`: the X448 scalar is the Ed448 secret scalar (RFC 8032 §5.2.5).

    Both clamp the same bits, so the 56 low bytes of SHAKE256(seed, 114) serve as the X448 private key.
    """
    seed = private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
    digest = hashes.Hash(hashes.SHAKE256(114))
    digest.update(seed)
    return x448.X448PrivateKey.from_private_bytes(digest.finalize()[:56])


@dataclass(frozen=True)
class EncryptedKey20:
    curve: str  # "SECP521" | "X448"
    encrypted_private_key: bytes  # IV(12) || ciphertext || tag(16): 94 (SECP521) or 84 (X448) bytes
    dh_public_key: bytes  # 133 bytes (uncompressed P-521 point) or 56 bytes (X448, no padding [V2G20-2495])

    @property
    def element(self) -> str:
        return "SECP521_EncryptedPrivateKey" if self.curve == "SECP521" else "X448_EncryptedPrivateKey"


def aad_20(pcid: str, contract_ski: bytes) -> bytes:
    """[V2G20-2492]: PCID in capitals without separators (18 bytes) || SKI of the contract cert in upper-case hex."""
    return pcid.upper().encode("ascii") + contract_ski.hex().upper().encode("ascii")


def _private_bytes_20(contract_key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey) -> tuple[str, bytes]:
    if isinstance(contract_key, ec.EllipticCurvePrivateKey):
        if contract_key.curve.name != "secp521r1":
            raise PolicyViolation("ISO 15118-20 EC contract keys are P-521")
        return "SECP521", contract_key.private_numbers().private_value.to_bytes(66, "big")  # 521 -> 528 bits
    raw = contract_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
    if len(raw) != 57 or raw[56] != 0:
        raise PolicyViolation("Ed448 contract keys must come from new_contract_key_20 (57th seed byte zero)")
    return "X448", raw[:56]


def encrypt_contract_key_20(contract_key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey,
                            oem_public_key: object, aad: bytes, *, kdf: Kdf20 = KDF20) -> EncryptedKey20:
    """Encrypt a -20 contract key for the EV; the curve follows the OEM provisioning key (P-521 or Ed448)."""
    if isinstance(oem_public_key, ec.EllipticCurvePublicKey) and oem_public_key.curve.name == "secp521r1":
        eph = ec.generate_private_key(ec.SECP521R1())
        secret = eph.exchange(ec.ECDH(), oem_public_key)
        dh = eph.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
        curve = "SECP521"
    elif isinstance(oem_public_key, ed448.Ed448PublicKey):
        eph_x = x448.X448PrivateKey.generate()
        secret = eph_x.exchange(ed448_public_to_x448(oem_public_key))
        dh = eph_x.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        curve = "X448"
    else:
        raise PolicyViolation("ISO 15118-20 key encryption needs a P-521 or Ed448 OEM provisioning key",
                              code="FAILED_CertChainError")
    key_curve, plain = _private_bytes_20(contract_key)
    if key_curve != curve:
        raise PolicyViolation(f"contract key is {key_curve} but the OEM provisioning key needs {curve}")
    iv = os.urandom(12)
    sealed = AESGCM(kdf.derive(secret)).encrypt(iv, plain, aad)  # ciphertext || 16-byte tag
    return EncryptedKey20(curve, iv + sealed, dh)


def decrypt_contract_key_20(encrypted: EncryptedKey20, oem_private_key: ec.EllipticCurvePrivateKey |
                            ed448.Ed448PrivateKey, aad: bytes, *,
                            kdf: Kdf20 = KDF20) -> ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey:
    """The EV side (tests, tooling): recover the contract key; raises on a wrong tag/AAD."""
    if encrypted.curve == "SECP521":
        if not isinstance(oem_private_key, ec.EllipticCurvePrivateKey) or len(encrypted.encrypted_private_key) != 94:
            raise InvalidRequest("SECP521 needs a P-521 OEM key and a 94-byte encrypted key")
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP521R1(), encrypted.dh_public_key)
        secret = oem_private_key.exchange(ec.ECDH(), peer)
    else:
        if not isinstance(oem_private_key, ed448.Ed448PrivateKey) or len(encrypted.encrypted_private_key) != 84:
            raise InvalidRequest("X448 needs an Ed448 OEM key and an 84-byte encrypted key")
        secret = ed448_private_to_x448(oem_private_key).exchange(
            x448.X448PublicKey.from_public_bytes(encrypted.dh_public_key))
    blob = encrypted.encrypted_private_key
    plain = AESGCM(kdf.derive(secret)).decrypt(blob[:12], blob[12:], aad)
    if encrypted.curve == "SECP521":
        return ec.derive_private_key(int.from_bytes(plain, "big"), ec.SECP521R1())
    return ed448.Ed448PrivateKey.from_private_bytes(plain + b"\x00")


def new_contract_key_20(curve: str) -> ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey:
    """A fresh -20 contract key. Ed448 keys get a 57-byte seed whose last byte is zero.

    [V2G20-2500] transports a *448-bit* private key, while an RFC 8032 Ed448 private key is a 57-byte seed; keeping
    the 57th byte zero makes the 56 transported bytes determine the key (the EV appends 0x00). This is our reading
    of the standard, to be confirmed with an EV implementation that supports -20 X448 provisioning.
    """
    if curve == "SECP521":
        return ec.generate_private_key(ec.SECP521R1())
    if curve == "X448":
        return ed448.Ed448PrivateKey.from_private_bytes(os.urandom(56) + b"\x00")
    raise PolicyViolation(f"unknown ECDH curve {curve!r}")
