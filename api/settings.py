"""Settings from ``PNC_*`` environment variables, with defaults that work on a laptop (``make run``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PASSPHRASE = "pnc-dev-passphrase-NOT-FOR-PRODUCTION"  # noqa: S105 - marked development default


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PNC_", env_file=None, extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""  # default: sqlite:///<data_dir>/pnc.db
    key_dir: Path | None = None  # default: <data_dir>/keys
    key_passphrase: SecretStr | None = None
    key_passphrase_file: Path | None = None
    public_url: str = "http://127.0.0.1:8080"
    host: str = "127.0.0.1"
    port: int = 8080
    organization: str = "pnc-pki Dev"
    country: str = "DE"
    dev_mode: bool = True  # generate a development PKI and admin token on first start
    with_iso15118_20: bool = True
    admin_token_file: Path | None = None  # default: <data_dir>/admin-token
    max_body_bytes: int = 64 * 1024
    log_format: str = "json"  # json or text
    log_level: str = "INFO"
    # OCSP responder and CRLs (docs/ocsp.md)
    ocsp_response_validity_hours: int = 192  # nextUpdate - thisUpdate: 8 days (stations refresh every 167 h)
    ocsp_refresh_after_hours: int = 24  # re-sign pre-signed responses older than this
    ocsp_sign_with_ca_key: bool = False  # sign with the CA key instead of a delegated OCSP signer
    ocsp_max_age_seconds: int = 3600  # HTTP Cache-Control max-age cap (never beyond nextUpdate)
    ocsp_background: bool = True  # run the pre-signing refresher and the table poller in the app lifespan
    ocsp_sync_interval_seconds: float = 0.25  # poll the shared response table (revocations by other instances)
    ocsp_refresh_interval_seconds: float = 60.0  # maintenance pass: signers, pre-signing, CRLs
    ocsp_max_concurrent_signing: int = 4  # on-demand signatures at once; beyond that plus a queue: tryLater
    crl_validity_hours: int = 168

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'pnc.db'}"

    def resolved_key_dir(self) -> Path:
        return self.key_dir or self.data_dir / "keys"

    def resolved_admin_token_file(self) -> Path:
        return self.admin_token_file or self.data_dir / "admin-token"

    def passphrase(self) -> bytes:
        """Key-store passphrase: env, then a secrets file, then (dev mode only) the marked development default."""
        if self.key_passphrase is not None:
            return self.key_passphrase.get_secret_value().encode()
        if self.key_passphrase_file is not None:
            return self.key_passphrase_file.read_bytes().strip()
        if self.dev_mode:
            return DEV_PASSPHRASE.encode()
        raise RuntimeError("set PNC_KEY_PASSPHRASE or PNC_KEY_PASSPHRASE_FILE (PNC_DEV_MODE is off)")
