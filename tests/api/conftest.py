"""App fixtures: a real app (lifespan, bootstrap) over a temporary data dir, with an admin token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.context import Services, bootstrap, build_services, create_token
from api.settings import Settings
from pki.store.repo import Database


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", key_passphrase="test-pass", with_iso15118_20=False,
                    organization="Test CPO", country="DE")


@pytest.fixture
def services(settings: Settings, db: Database) -> Iterator[Services]:
    svc = build_services(settings, migrate=False)
    svc.db.dispose()
    svc.db = db
    svc.authority.db = db
    bootstrap(svc)
    yield svc


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    app = create_app(services=services)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def admin_token(services: Services) -> str:
    return services.settings.resolved_admin_token_file().read_text().strip()


def token_for(services: Services, role: str) -> str:
    return create_token(services, f"test-{role}", role)
