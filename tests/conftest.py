"""Shared fixtures.

Storage: every test that uses ``db`` runs on SQLite (a fresh file) by default, and on PostgreSQL when
``PNC_DATABASE_URL`` names one — each test then gets its own schema, so tests never see each other's rows. Such
tests are marked ``storage`` automatically; CI runs ``-m storage`` a second time against PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pki.authority import Authority
from pki.hierarchy import OCPP_SPECS, HierarchyPlan, create_hierarchies, iso15118_specs
from pki.keys.base import KeyAlgorithm, KeyManager
from pki.keys.file import FileKeyStore
from pki.profiles import Generation
from pki.store.repo import Database

TEST_PASSPHRASE = b"test-passphrase-not-secret"
PG_URL = os.environ.get("PNC_DATABASE_URL", "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "db" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.storage)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    if PG_URL.startswith("postgresql"):
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"}, pool_size=10,
                                  max_overflow=20, pool_pre_ping=True)
        # the URL names the schema too, so a process of our own (the CLI, `pnc serve`) reaches the same tables
        database = Database(PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}",
                            engine=engine)
        database.migrate()
        try:
            yield database
        finally:
            database.dispose()
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    else:
        database = Database(f"sqlite:///{tmp_path / 'pnc.db'}")
        database.migrate()
        try:
            yield database
        finally:
            database.dispose()


@pytest.fixture
def keys(tmp_path: Path) -> KeyManager:
    km = KeyManager()
    km.register(FileKeyStore(tmp_path / "keys", TEST_PASSPHRASE))
    return km


@pytest.fixture
def authority(db: Database, keys: KeyManager) -> Authority:
    return Authority(db, keys, public_url="http://127.0.0.1:8080")


def make_hierarchies(authority: Authority, *, iso20: bool = False) -> None:
    plans = [
        HierarchyPlan(Generation.ISO15118_2, iso15118_specs(), KeyAlgorithm.P256),
        HierarchyPlan(Generation.OCPP, OCPP_SPECS, KeyAlgorithm.P256),
    ]
    if iso20:
        plans.append(HierarchyPlan(Generation.ISO15118_20, iso15118_specs("20"), KeyAlgorithm.P521))
    create_hierarchies(authority, plans, organization="Test CPO", country="DE")


@pytest.fixture
def pki(authority: Authority) -> Authority:
    """An authority with the ISO 15118-2 and OCPP hierarchies created."""
    make_hierarchies(authority)
    return authority
