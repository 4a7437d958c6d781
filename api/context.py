"""Wires settings to the domain services. One :class:`Services` per process, shared by REST, CLI and OCPP."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy.exc import IntegrityError

from api.settings import Settings
from pki.audit import AuditLog
from pki.authority import Authority
from pki.clock import Clock, SystemClock
from pki.crl import CrlService
from pki.errors import Conflict, InvalidRequest, NotFound
from pki.hierarchy import create_hierarchies, default_plans
from pki.keys.base import KeyManager
from pki.keys.file import FileKeyStore
from pki.ocsp import OcspPolicy, OcspService
from pki.profiles import all_profiles
from pki.profiles.validity import parse_validity_policy
from pki.ratelimit import RateLimiter
from pki.store import repo
from pki.store.models import ApiToken
from pki.store.security_models import ClientCertificate

if TYPE_CHECKING:
    from pki.iso15118.service import ContractService

ROLES = ("admin", "operator", "csms", "auditor")
_SCOPE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


@dataclass
class Services:
    settings: Settings
    db: repo.Database
    keys: KeyManager
    authority: Authority
    ocsp: OcspService  # services.ocsp.respond_to_hash_data(...) answers OCPP GetCertificateStatus
    crl: CrlService
    token_limiter: RateLimiter | None = field(default=None)
    station_limiter: RateLimiter | None = field(default=None)  # hook for the OCPP server: check(station_id)

    def __post_init__(self) -> None:
        s = self.settings
        if self.token_limiter is None:
            self.token_limiter = RateLimiter(s.rate_limit_per_token, s.rate_limit_burst, what="API client")
        if self.station_limiter is None:
            self.station_limiter = RateLimiter(s.rate_limit_per_station, s.rate_limit_station_burst, what="station")

    def audit_log(self) -> AuditLog:
        """The audit log over the current database (tests swap ``db``, so this is not cached)."""
        return AuditLog(self.db, self.keys, key_uri=self.settings.audit_key_uri, scheme=self.settings.key_scheme,
                        clock=self.authority.clock)
    _contracts: ContractService | None = field(default=None, repr=False)

    @property
    def contracts(self) -> ContractService:
        """The Plug & Charge contract service (built on first use; see api/contracts_wiring.py)."""
        if self._contracts is None:
            from api.contracts_wiring import build_contract_service

            self._contracts = build_contract_service(self)
        return self._contracts

    def close(self) -> None:
        self.db.dispose()


def build_services(settings: Settings, *, clock: Clock | None = None, migrate: bool = True) -> Services:
    validity = parse_validity_policy(settings.validity_days, all_profiles())  # a configuration error stops here
    db = repo.Database(settings.resolved_database_url())
    if migrate:
        db.migrate()
    keys = build_key_manager(settings)
    authority = Authority(db, keys, public_url=settings.public_url, clock=clock or SystemClock(),
                          key_scheme=settings.key_scheme,
                          validity=validity)
    return Services(settings=settings, db=db, keys=keys, authority=authority,
                    ocsp=OcspService(authority, ocsp_policy(settings)),
                    crl=CrlService(authority, validity=dt.timedelta(hours=settings.crl_validity_hours),
                                   regenerate_before=dt.timedelta(hours=settings.crl_validity_hours) / 2))


def ocsp_policy(settings: Settings) -> OcspPolicy:
    validity = dt.timedelta(hours=settings.ocsp_response_validity_hours)
    return OcspPolicy(response_validity=validity,
                      refresh_after=dt.timedelta(hours=settings.ocsp_refresh_after_hours),
                      signer_renew_before=max(validity + dt.timedelta(days=4), dt.timedelta(days=12)),
                      sign_with_ca_key=settings.ocsp_sign_with_ca_key,
                      max_age=dt.timedelta(seconds=settings.ocsp_max_age_seconds))


def build_key_manager(settings: Settings) -> KeyManager:
    """File store always (existing keys stay usable); PKCS#11 when a module is configured. New CA keys go to
    ``PNC_KEY_SCHEME``."""
    if settings.key_scheme not in ("file", "pkcs11"):
        raise RuntimeError(f"PNC_KEY_SCHEME must be file or pkcs11, not {settings.key_scheme!r}")
    keys = KeyManager(default_scheme=settings.key_scheme)
    keys.register(FileKeyStore(settings.resolved_key_dir(), settings.passphrase()))
    if settings.pkcs11_module:
        from pki.keys.pkcs11 import Pkcs11KeyStore

        if not settings.pkcs11_token:
            raise RuntimeError("PNC_PKCS11_TOKEN (the token label) is required with PNC_PKCS11_MODULE")
        keys.register(Pkcs11KeyStore(settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_user_pin()))
    elif settings.key_scheme == "pkcs11":
        raise RuntimeError("PNC_KEY_SCHEME=pkcs11 needs PNC_PKCS11_MODULE and PNC_PKCS11_TOKEN")
    return keys


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_scopes(scopes: str | list[str] | tuple[str, ...] | None) -> str | None:
    """Scopes narrow a token to API areas (``/api/v1/<area>/...``) and/or ``read`` (GET only); None = whole role."""
    if scopes is None:
        return None
    items = scopes.split() if isinstance(scopes, str) else [x for s in scopes for x in s.split()]
    for item in items:
        if not _SCOPE.match(item):
            raise InvalidRequest(f"invalid scope {item!r} (an API area such as 'certificates', or 'read')")
    return " ".join(sorted(set(items))) or None


def create_token(services: Services, name: str, role: str, *, scopes: str | list[str] | None = None,
                 expires_in: dt.timedelta | None = None, actor: str = "system") -> str:
    """Create a token (shown once; stored as SHA-256) and audit it in the same transaction."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    if not _NAME.match(name):
        raise InvalidRequest("token name: 1-128 characters of letters, digits, . _ @ -")
    scope_text = normalise_scopes(scopes)
    token = "pnc_" + secrets.token_urlsafe(32)
    now = services.authority.clock.now()
    expires = now + expires_in if expires_in is not None else None
    record = ApiToken(name=name, token_hash=hash_token(token), role=role, scopes=scope_text, expires_at=expires)
    audit = repo.audit_event(actor, "token.create", "success", target=name,
                             details={"role": role, "scopes": scope_text,
                                      "expires_at": expires.isoformat() if expires else None})
    try:
        repo.add_audited(services.db, record, audit)
    except IntegrityError:
        raise Conflict(f"a token named {name!r} already exists") from None
    return token


def revoke_token(services: Services, name: str, *, actor: str = "system") -> ApiToken:
    audit = repo.audit_event(actor, "token.revoke", "success", target=name)
    row = repo.revoke_by_name(services.db, ApiToken, name, services.authority.clock.now(), audit)
    if row is None:
        raise NotFound(f"no token named {name!r}")
    return row


def certificate_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def bind_client_certificate(services: Services, name: str, role: str, certificate_pem: bytes, *,
                            scopes: str | list[str] | None = None, actor: str = "system") -> ClientCertificate:
    """Allow an API client to authenticate with this TLS client certificate (pinned by fingerprint)."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    if not _NAME.match(name):
        raise InvalidRequest("client name: 1-128 characters of letters, digits, . _ @ -")
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError:
        raise InvalidRequest("not a PEM certificate") from None
    fp = certificate_fingerprint(cert)
    row = ClientCertificate(name=name, fingerprint_sha256=fp, role=role, scopes=normalise_scopes(scopes),
                            subject=cert.subject.rfc4514_string()[:1024], expires_at=cert.not_valid_after_utc)
    audit = repo.audit_event(actor, "client-certificate.bind", "success", target=name,
                             details={"role": role, "fingerprint": fp, "subject": row.subject})
    try:
        return repo.add_audited(services.db, row, audit)
    except IntegrityError:
        raise Conflict(f"client {name!r} or this certificate is already registered") from None


def unbind_client_certificate(services: Services, name: str, *, actor: str = "system") -> ClientCertificate:
    audit = repo.audit_event(actor, "client-certificate.revoke", "success", target=name)
    row = repo.revoke_by_name(services.db, ClientCertificate, name, services.authority.clock.now(), audit)
    if row is None:
        raise NotFound(f"no client certificate named {name!r}")
    return row


def write_secret_file(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(content + "\n")
    os.chmod(path, 0o600)


def bootstrap(services: Services) -> list[str]:
    """First-start duties: recover interrupted issuance; in dev mode create the PKI and an admin token."""
    services.authority.recover_pending()
    created: list[str] = []
    s = services.settings
    if s.dev_mode:
        created = create_hierarchies(services.authority, default_plans(with_iso15118_20=s.with_iso15118_20),
                                     organization=s.organization, country=s.country)
        if repo.count_tokens(services.db) == 0:
            token = create_token(services, "dev-admin", "admin")
            write_secret_file(s.resolved_admin_token_file(), token)
    return created
