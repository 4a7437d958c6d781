"""index certificate.serial (lookups by serial without the issuer) and (status, not_after) (expiry counts)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 04:05:00
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # bench/growth.py: at 20k rows a serial-only lookup already cost 6x its 2k-row time (a full scan).
    # IF NOT EXISTS: on a large PostgreSQL table an operator may build them beforehand with CREATE INDEX
    # CONCURRENTLY (no write lock) under these names (docs/deployment.md, upgrades).
    op.create_index('ix_certificate_serial', 'certificate', ['serial'], unique=False, if_not_exists=True)
    op.create_index('ix_certificate_status_not_after', 'certificate', ['status', 'not_after'], unique=False,
                    if_not_exists=True)


def downgrade() -> None:
    op.drop_index('ix_certificate_status_not_after', table_name='certificate')
    op.drop_index('ix_certificate_serial', table_name='certificate')
