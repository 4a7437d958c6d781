"""Encrypted PKCS#8 file store: 0600 files, permissions enforced, secrets never in errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pki.errors import KeyStoreError
from pki.keys.base import KeyAlgorithm, KeyManager
from pki.keys.file import FileKeyStore


def test_generate_load_and_protect(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "k", b"s3cret-passphrase")
    uri = store.generate("ca1", KeyAlgorithm.P256)
    path = tmp_path / "k" / "ca1.key.pem"
    assert uri == "file:ca1.key.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert isinstance(store.signer(uri), ec.EllipticCurvePrivateKey)
    with pytest.raises(KeyStoreError, match="already exists"):
        store.generate("ca1", KeyAlgorithm.P256)
    os.chmod(path, 0o644)
    with pytest.raises(KeyStoreError, match="readable by group or others"):
        store.signer(uri)


def test_wrong_passphrase_error_reveals_nothing(tmp_path: Path) -> None:
    FileKeyStore(tmp_path, b"right-one").generate("k", KeyAlgorithm.P521)
    with pytest.raises(KeyStoreError) as info:
        FileKeyStore(tmp_path, b"wrong-one").signer("file:k.key.pem")
    text = str(info.value) + repr(info.value)
    assert "right-one" not in text and "wrong-one" not in text and "BEGIN" not in text
    assert "could not be decrypted" in text


def test_manager_dispatch_and_cache(tmp_path: Path) -> None:
    km = KeyManager()
    km.register(FileKeyStore(tmp_path, b"pw"))
    uri = km.generate("x", KeyAlgorithm.ED448)
    assert km.signer(uri) is km.signer(uri)
    with pytest.raises(KeyStoreError, match="no key store registered for scheme 'pkcs11'"):
        km.signer("pkcs11:token=a;object=b")
    assert "pw" not in repr(FileKeyStore(tmp_path, b"pw"))
