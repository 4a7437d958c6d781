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
    workers: int = 1  # uvicorn worker processes of `pnc serve` (share the database; see docs/deployment.md)
    organization: str = "pnc-pki Dev"
    country: str = "DE"
    dev_mode: bool = True  # generate a development PKI and admin token on first start
    with_iso15118_20: bool = True
    # per-kind validity in days, within each profile's hard maximum: "secc-leaf=60:90,contract-leaf=365" (default[:max])
    validity_days: str = ""
    admin_token_file: Path | None = None  # default: <data_dir>/admin-token
    max_body_bytes: int = 64 * 1024
    max_batch_body_bytes: int = 2 * 1024 * 1024  # POST /api/v1/certificates/batch: up to 1,000 CSRs
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
    ocsp_initial_delay_seconds: float = 2.0  # first pass shortly after start-up (misses are signed on demand)
    # a dedicated OCSP listener (api/ocsp_listener.py) on this port, besides /ocsp on the main port; None = off
    ocsp_port: int | None = None
    ocsp_host: str | None = None  # default: host
    ocsp_keep_alive_seconds: float = 15.0  # idle keep-alive connections of the listener are closed after this
    ocsp_max_concurrent_signing: int = 4  # on-demand signatures at once; beyond that plus a queue: tryLater
    crl_validity_hours: int = 168
    request_timeout_seconds: float = 30.0  # HTTP requests only (WebSockets are long-lived by design)
    rate_limit_per_token: float = 50.0  # requests/second per API token or client certificate
    rate_limit_burst: int = 200
    rate_limit_per_station: float = 2.0  # OCPP messages/second per station (hook used by the OCPP server)
    rate_limit_station_burst: int = 30
    audit_key_uri: str | None = None  # default: label "audit-signing" in PNC_KEY_SCHEME's store
    audit_checkpoint_seconds: float = 300.0  # 0 disables the periodic signed checkpoint
    mtls_header: str | None = None  # e.g. x-client-cert: URL-encoded PEM set by a TLS-terminating proxy
    trusted_proxies: list[str] = []  # client addresses whose mtls_header is believed
    key_scheme: str = "file"  # where new CA keys are generated: file or pkcs11
    pkcs11_module: str | None = None  # e.g. /usr/lib/softhsm/libsofthsm2.so or the HSM vendor's module
    pkcs11_token: str | None = None  # token label
    pkcs11_pin: SecretStr | None = None
    pkcs11_pin_file: Path | None = None
    # Plug & Charge contracts (docs/plug-and-charge.md)
    contract_provisioning_policy: str = "bound"  # bound | bind-first | auto-create
    contract_default_owner: str | None = None
    contract_default_country: str | None = None  # auto-create: EMAID country code
    contract_default_provider: str | None = None  # auto-create: EMAID provider ID
    contract_require_root_match: bool = False  # refuse when no MO chain leads to a root the EV listed
    contract_routing: str = ""  # JSON: upstream pools and per-station/per-eMSP routing
    contract_routing_file: Path | None = None

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'pnc.db'}"

    def resolved_key_dir(self) -> Path:
        return self.key_dir or self.data_dir / "keys"

    def resolved_admin_token_file(self) -> Path:
        return self.admin_token_file or self.data_dir / "admin-token"

    def pkcs11_user_pin(self) -> str:
        """HSM user PIN: env, then a secrets file. Never logged, never part of a key URI."""
        if self.pkcs11_pin is not None:
            return self.pkcs11_pin.get_secret_value()
        if self.pkcs11_pin_file is not None:
            return self.pkcs11_pin_file.read_text().strip()
        raise RuntimeError("set PNC_PKCS11_PIN or PNC_PKCS11_PIN_FILE for the pkcs11 key store")

    def passphrase(self) -> bytes:
        """Key-store passphrase: env, then a secrets file, then (dev mode only) the marked development default."""
        if self.key_passphrase is not None:
            return self.key_passphrase.get_secret_value().encode()
        if self.key_passphrase_file is not None:
            return self.key_passphrase_file.read_bytes().strip()
        if self.dev_mode:
            return DEV_PASSPHRASE.encode()
        raise RuntimeError("set PNC_KEY_PASSPHRASE or PNC_KEY_PASSPHRASE_FILE (PNC_DEV_MODE is off)")
