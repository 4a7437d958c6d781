"""The alembic migrations and the SQLModel tables describe the same schema (no drift), on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import pki.store.models  # noqa: F401
from pki.store.repo import Database


def test_no_drift_between_models_and_migrations(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_migrate_is_idempotent(db: Database) -> None:
    db.migrate()
    db.migrate()
