"""Encrypted PKCS#8 files: the development and small-deployment key store.

URI form: ``file:<path>`` (absolute, or relative to the store's directory). Keys are written with mode 0600 and
encrypted with a passphrase that comes from the environment or a secrets file, never from a command line
argument (which would show in ``ps``). Error messages name the URI only.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from pki.errors import KeyStoreError
from pki.keys.base import KeyAlgorithm, Signer, new_private_key

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class FileKeyStore:
    scheme = "file"

    def __init__(self, directory: Path, passphrase: bytes) -> None:
        if not passphrase:
            raise KeyStoreError("the file key store needs a non-empty passphrase")
        self.directory = directory
        self._passphrase = passphrase

    def __repr__(self) -> str:  # never show the passphrase
        return f"FileKeyStore({str(self.directory)!r})"

    def _path(self, uri: str) -> Path:
        if not uri.startswith("file:"):
            raise KeyStoreError(f"not a file key URI: {uri!r}")
        raw = Path(uri[len("file:") :])
        return raw if raw.is_absolute() else self.directory / raw

    def generate(self, label: str, algorithm: KeyAlgorithm) -> str:
        if not _LABEL.match(label):
            raise KeyStoreError(f"invalid key label {label!r}")
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        path = self.directory / f"{label}.key.pem"
        if path.exists():
            raise KeyStoreError(f"key file for label {label!r} already exists")
        key = new_private_key(algorithm)
        self.write(path, key)
        return f"file:{path.name}"

    def write(self, path: Path, key: Signer) -> None:
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    def signer(self, uri: str) -> Signer:
        path = self._path(uri)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise KeyStoreError(f"key {uri!r} not found") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreError(f"key {uri!r} is readable by group or others (mode {oct(mode & 0o777)}); chmod 600")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), self._passphrase)
        except (ValueError, TypeError):
            # cryptography's message may describe the key; keep ours generic.
            raise KeyStoreError(f"key {uri!r} could not be decrypted (wrong passphrase or corrupt file)") from None
        return key  # type: ignore[return-value]

    def delete(self, uri: str) -> None:
        self._path(uri).unlink(missing_ok=True)
