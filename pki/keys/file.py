"""Encrypted PKCS#8 files: the development and small-deployment key store.

URI form: ``file:<path>`` (absolute, or relative to the store's directory). Keys are written with mode 0600 and
encrypted with a passphrase that comes from the environment or a secrets file, never from a command line
argument (which would show in ``ps``). Error messages name the URI only.

Encryption is PBES2 with scrypt (N=2^14, r=8, p=2 by default: 16 MiB and the CPU cost of N=2^15, readable by the
``openssl`` CLI whose scrypt memory cap is 32 MiB) and AES-256-CBC, see :mod:`pki.keys.pkcs8`; files written by
older versions (PBKDF2) still load. At start the store refuses a key directory or key file that group or others
can access: a readable encrypted key invites an offline passphrase search.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from pki.errors import KeyStoreError
from pki.keys import pkcs8
from pki.keys.base import KeyAlgorithm, Signer, new_private_key

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class FileKeyStore:
    scheme = "file"

    def __init__(self, directory: Path, passphrase: bytes, *, kdf_log2_n: int = 14, kdf_r: int = 8,
                 kdf_p: int = 2) -> None:
        if not passphrase:
            raise KeyStoreError("the file key store needs a non-empty passphrase")
        if kdf_log2_n < 14 or kdf_r < 8 or kdf_p < 1:
            raise KeyStoreError("scrypt parameters below N=2^14, r=8, p=1 are refused")
        self.directory = directory
        self._passphrase = passphrase
        self._kdf_params = (kdf_log2_n, kdf_r, kdf_p)
        self._kdf: pkcs8.ScryptKdf | None = None
        self._kek: bytes | None = None
        self._lock = threading.Lock()
        self.check_permissions()

    def check_permissions(self) -> None:
        """Refuse a key directory or key file that group or others may access (run at start-up)."""
        if not self.directory.exists():
            return
        mode = self.directory.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreError(f"key directory {str(self.directory)!r} is accessible by group or others "
                                f"(mode {oct(mode & 0o777)}); chmod 700")
        for path in self.directory.iterdir():
            if path.is_file() and (path.suffix == ".pem" or path.name == ".kdf"):
                fmode = path.stat().st_mode
                if fmode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise KeyStoreError(f"key file {path.name!r} is readable by group or others "
                                        f"(mode {oct(fmode & 0o777)}); chmod 600")

    def _key_encryption_key(self) -> tuple[pkcs8.ScryptKdf, bytes]:
        """The store's KDF parameters (``<dir>/.kdf``, created on first use) and the derived key, once per process."""
        with self._lock:
            if self._kdf is not None and self._kek is not None:
                return self._kdf, self._kek
            path = self.directory / ".kdf"
            if path.exists():
                try:
                    raw = json.loads(path.read_text())
                    kdf = pkcs8.ScryptKdf(bytes.fromhex(raw["salt"]), int(raw["log2_n"]), int(raw["r"]),
                                          int(raw["p"]))
                except (ValueError, KeyError, TypeError):
                    raise KeyStoreError("the key store's .kdf file is corrupt") from None
            else:
                log2_n, r, p = self._kdf_params
                kdf = pkcs8.ScryptKdf(os.urandom(16), log2_n, r, p)
                self.directory.mkdir(parents=True, exist_ok=True)
                os.chmod(self.directory, 0o700)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    json.dump({"kdf": "scrypt", "salt": kdf.salt.hex(), "log2_n": kdf.log2_n, "r": kdf.r,
                               "p": kdf.p}, fh)
            self._kdf, self._kek = kdf, kdf.derive(self._passphrase)
            return self._kdf, self._kek

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
        kdf, kek = self._key_encryption_key()
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        data = pkcs8.encrypt(der, kdf, kek)
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
        data = path.read_bytes()
        try:
            parsed = pkcs8.parse(data)
            kdf, kek = self._key_encryption_key() if parsed is not None else (None, None)
            if parsed is not None and parsed[0] == kdf and kek is not None:
                key = serialization.load_der_private_key(pkcs8.decrypt(parsed[1], parsed[2], kek), None)
            else:  # another store's file, or the PBKDF2 format of earlier versions: OpenSSL derives
                key = serialization.load_pem_private_key(data, self._passphrase)
        except (ValueError, TypeError):
            # cryptography's message may describe the key; keep ours generic.
            raise KeyStoreError(f"key {uri!r} could not be decrypted (wrong passphrase or corrupt file)") from None
        return key  # type: ignore[return-value]

    def delete(self, uri: str) -> None:
        self._path(uri).unlink(missing_ok=True)
