"""Contract-key encryption: EV-side decryption re-derived from the primitives (SP 800-56A ConcatKDF by hand)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pki.errors import PolicyViolation
from pki.iso15118 import keywrap
from pki.iso15118.keywrap import (
    EncryptedKey20,
    aad_20,
    decrypt_contract_key_2,
    decrypt_contract_key_20,
    encrypt_contract_key_2,
    encrypt_contract_key_20,
)


def concat_kdf_sha256(z: bytes, length: int, other_info: bytes) -> bytes:
    """NIST SP 800-56A §5.8.1 single-step KDF, written out: H(counter32 || Z || OtherInfo) ..."""
    out = b""
    counter = 1
    while len(out) < length:
        out += hashlib.sha256(counter.to_bytes(4, "big") + z + other_info).digest()
        counter += 1
    return out[:length]


def test_iso2_sizes_and_ev_side_decryption_from_primitives() -> None:
    oem = ec.generate_private_key(ec.SECP256R1())
    contract = ec.generate_private_key(ec.SECP256R1())
    enc = encrypt_contract_key_2(contract, oem.public_key())
    assert len(enc.encrypted_private_key) == 48 and len(enc.dh_public_key) == 65 and enc.dh_public_key[0] == 4
    # EV side, independently: ECDH with the OEM key, ConcatKDF by hand, AES-128-CBC without padding
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), enc.dh_public_key)
    kek = concat_kdf_sha256(oem.exchange(ec.ECDH(), peer), 16, b"\x01\x55\x56")
    dec = Cipher(algorithms.AES(kek), modes.CBC(enc.encrypted_private_key[:16])).decryptor()
    scalar = dec.update(enc.encrypted_private_key[16:]) + dec.finalize()
    assert int.from_bytes(scalar, "big") == contract.private_numbers().private_value
    # and the module's own EV-side helper agrees
    assert decrypt_contract_key_2(enc.encrypted_private_key, enc.dh_public_key, oem).private_numbers() == \
        contract.private_numbers()


def test_iso2_fresh_ephemeral_and_iv_each_time() -> None:
    oem = ec.generate_private_key(ec.SECP256R1())
    contract = ec.generate_private_key(ec.SECP256R1())
    a, b = encrypt_contract_key_2(contract, oem.public_key()), encrypt_contract_key_2(contract, oem.public_key())
    assert a.dh_public_key != b.dh_public_key and a.encrypted_private_key[:16] != b.encrypted_private_key[:16]


def test_iso2_wrong_oem_key_does_not_recover_the_key() -> None:
    oem, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    contract = ec.generate_private_key(ec.SECP256R1())
    enc = encrypt_contract_key_2(contract, oem.public_key())
    with pytest.raises(ValueError):  # a wrong scalar is out of range or simply a different key
        got = decrypt_contract_key_2(enc.encrypted_private_key, enc.dh_public_key, other)
        assert got.private_numbers() != contract.private_numbers()
        raise ValueError("different key")


def test_iso2_refuses_non_p256_oem_key() -> None:
    with pytest.raises(PolicyViolation):
        encrypt_contract_key_2(ec.generate_private_key(ec.SECP256R1()),
                               ec.generate_private_key(ec.SECP521R1()).public_key())


SKI = bytes.fromhex("a1b2c3d4e5f6708192a3b4c5d6e7f80112233445")


def test_aad_is_pcid_then_upper_hex_ski() -> None:
    assert aad_20("wmiv1234567890abcd", SKI) == b"WMIV1234567890ABCD" + SKI.hex().upper().encode()


def test_iso20_secp521_layout_and_independent_decryption() -> None:
    oem = ec.generate_private_key(ec.SECP521R1())
    contract = ec.generate_private_key(ec.SECP521R1())
    aad = aad_20("WMIV1234567890ABCD", SKI)
    enc = encrypt_contract_key_20(contract, oem.public_key(), aad)
    assert enc.curve == "SECP521" and enc.element == "SECP521_EncryptedPrivateKey"
    assert len(enc.encrypted_private_key) == 94 and len(enc.dh_public_key) == 133
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP521R1(), enc.dh_public_key)
    key = concat_kdf_sha256(oem.exchange(ec.ECDH(), peer), 32, b"\x01\x55\x56")
    blob = enc.encrypted_private_key
    plain = AESGCM(key).decrypt(blob[:12], blob[12:], aad)
    assert len(plain) == 66 and int.from_bytes(plain, "big") == contract.private_numbers().private_value
    got = decrypt_contract_key_20(enc, oem, aad)
    assert isinstance(got, ec.EllipticCurvePrivateKey)
    assert got.private_numbers() == contract.private_numbers()


def test_iso20_x448_layout_and_round_trip() -> None:
    oem = ed448.Ed448PrivateKey.generate()
    contract = keywrap.new_contract_key_20("X448")
    assert isinstance(contract, ed448.Ed448PrivateKey)
    aad = aad_20("WMIV1234567890ABCD", SKI)
    enc = encrypt_contract_key_20(contract, oem.public_key(), aad)
    assert enc.curve == "X448" and len(enc.encrypted_private_key) == 84 and len(enc.dh_public_key) == 56
    got = decrypt_contract_key_20(enc, oem, aad)
    assert isinstance(got, ed448.Ed448PrivateKey)
    assert got.public_key() == contract.public_key()


def test_iso20_wrong_aad_fails_the_tag() -> None:
    oem = ec.generate_private_key(ec.SECP521R1())
    enc = encrypt_contract_key_20(ec.generate_private_key(ec.SECP521R1()), oem.public_key(),
                                  aad_20("WMIV1234567890ABCD", SKI))
    with pytest.raises(InvalidTag):
        decrypt_contract_key_20(enc, oem, aad_20("WMIV1234567890ABCE", SKI))
    tampered = EncryptedKey20(enc.curve, enc.encrypted_private_key[:-1] + bytes([enc.encrypted_private_key[-1] ^ 1]),
                              enc.dh_public_key)
    with pytest.raises(InvalidTag):
        decrypt_contract_key_20(tampered, oem, aad_20("WMIV1234567890ABCD", SKI))


def test_iso20_curve_mismatch_is_refused() -> None:
    with pytest.raises(PolicyViolation):
        encrypt_contract_key_20(ec.generate_private_key(ec.SECP521R1()), ed448.Ed448PrivateKey.generate().public_key(),
                                b"")
