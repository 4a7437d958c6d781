"""Hardened file keys: scrypt PBES2 that openssl reads, permission checks at start, passphrase never disclosed."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki.errors import KeyStoreError
from pki.keys.base import KeyAlgorithm
from pki.keys.file import FileKeyStore

PASS = b"correct horse battery staple 42"


def test_kdf_is_scrypt_and_openssl_reads_the_file(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "k", PASS)
    store.generate("ca", KeyAlgorithm.P256)
    path = tmp_path / "k" / "ca.key.pem"
    parsed = subprocess.run(["openssl", "asn1parse", "-in", str(path)], capture_output=True, text=True, check=True)
    assert ":PBES2" in parsed.stdout and ":scrypt" in parsed.stdout and ":aes-256-cbc" in parsed.stdout
    assert "INTEGER           :4000" in parsed.stdout  # N = 2^14
    assert ":PBKDF2" not in parsed.stdout
    env = {**os.environ, "KEYPASS": PASS.decode()}
    res = subprocess.run(["openssl", "pkey", "-in", str(path), "-passin", "env:KEYPASS", "-pubout"],
                         capture_output=True, text=True, check=False, env=env)
    assert res.returncode == 0, res.stderr
    ours = store.signer("file:ca.key.pem").public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert res.stdout == ours
    wrong = subprocess.run(["openssl", "pkey", "-in", str(path), "-passin", "pass:wrong", "-noout"],
                           capture_output=True, check=False)
    assert wrong.returncode != 0
    # a second process (new store object) derives from .kdf and reads the key
    assert isinstance(FileKeyStore(tmp_path / "k", PASS).signer("file:ca.key.pem"), ec.EllipticCurvePrivateKey)


def test_legacy_pbkdf2_files_still_load(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir(mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k" / "old.key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(PASS)))
    path.chmod(0o600)
    loaded = FileKeyStore(tmp_path / "k", PASS).signer("file:old.key.pem")
    assert loaded.public_key() == key.public_key()


def test_start_refuses_open_directory_or_files(tmp_path: Path) -> None:
    FileKeyStore(tmp_path / "k", PASS).generate("ca", KeyAlgorithm.P256)
    os.chmod(tmp_path / "k", 0o755)  # noqa: S103 - the misconfiguration under test
    with pytest.raises(KeyStoreError, match="accessible by group or others"):
        FileKeyStore(tmp_path / "k", PASS)
    os.chmod(tmp_path / "k", 0o700)
    os.chmod(tmp_path / "k" / "ca.key.pem", 0o640)
    with pytest.raises(KeyStoreError, match="readable by group or others"):
        FileKeyStore(tmp_path / "k", PASS)
    os.chmod(tmp_path / "k" / "ca.key.pem", 0o600)
    FileKeyStore(tmp_path / "k", PASS)


def test_weak_kdf_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError):
        FileKeyStore(tmp_path, PASS, kdf_log2_n=10)


def test_passphrase_never_in_errors_logs_or_repr(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = FileKeyStore(tmp_path / "k", PASS)
    uri = store.generate("ca", KeyAlgorithm.P521)
    texts = [repr(store), str(store.__dict__.get("directory"))]
    for bad in (FileKeyStore(tmp_path / "k", b"wrong passphrase"),):
        with pytest.raises(KeyStoreError) as info:
            bad.signer(uri)
        texts += [str(info.value), repr(info.value)]
    with pytest.raises(KeyStoreError) as info:
        store.signer("file:missing.key.pem")
    texts.append(str(info.value))
    blob = "\n".join(texts) + caplog.text
    assert PASS.decode() not in blob and "wrong passphrase" not in blob.replace("(wrong passphrase", "")
