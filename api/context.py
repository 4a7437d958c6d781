"""Wires settings to the domain services. One :class:`Services` per process, shared by REST, CLI and OCPP."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from api.settings import Settings
from pki.authority import Authority
from pki.clock import Clock, SystemClock
from pki.crl import CrlService
from pki.hierarchy import create_hierarchies, default_plans
from pki.keys.base import KeyManager
from pki.keys.file import FileKeyStore
from pki.ocsp import OcspPolicy, OcspService
from pki.store import repo
from pki.store.models import ApiToken

ROLES = ("admin", "operator", "csms", "auditor")


@dataclass
class Services:
    settings: Settings
    db: repo.Database
    keys: KeyManager
    authority: Authority
    ocsp: OcspService  # services.ocsp.respond_to_hash_data(...) answers OCPP GetCertificateStatus
    crl: CrlService

    def close(self) -> None:
        self.db.dispose()


def build_services(settings: Settings, *, clock: Clock | None = None, migrate: bool = True) -> Services:
    db = repo.Database(settings.resolved_database_url())
    if migrate:
        db.migrate()
    keys = KeyManager()
    keys.register(FileKeyStore(settings.resolved_key_dir(), settings.passphrase()))
    authority = Authority(db, keys, public_url=settings.public_url, clock=clock or SystemClock())
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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(services: Services, name: str, role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = "pnc_" + secrets.token_urlsafe(32)
    repo.add_token(services.db, ApiToken(name=name, token_hash=hash_token(token), role=role))
    repo.add_audit(services.db, repo.audit_event("system", "token.create", "success", target=name,
                                                  details={"role": role}))
    return token


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
