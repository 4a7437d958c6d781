"""Alembic environment: runs against the engine handed over by :func:`pki.store.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import pki.store.models  # noqa: F401  (registers the tables)

config = context.config
engine = config.attributes.get("engine")
target_metadata = SQLModel.metadata

if engine is None:
    raise RuntimeError("run migrations through pki.store.db.migrate(engine)")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
