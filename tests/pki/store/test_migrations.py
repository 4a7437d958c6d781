"""The alembic migrations and the SQLModel tables describe the same schema (no drift), on both databases."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

import pki.store.models  # noqa: F401
from pki.store.db import alembic_config
from pki.store.repo import Database


def test_no_drift_between_models_and_migrations(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_migrate_is_idempotent(db: Database) -> None:
    db.migrate()
    db.migrate()


def test_0008_accepts_indexes_an_operator_built_beforehand(tmp_path: Path) -> None:
    """docs/deployment.md: on a large table the indexes may be created CONCURRENTLY before the upgrade."""
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        command.upgrade(alembic_config(db.engine), "0007")
        with db.engine.begin() as conn:
            conn.execute(text("CREATE INDEX ix_certificate_serial ON certificate (serial)"))
        db.migrate()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert diff == []
    finally:
        db.dispose()
