"""OCPP connection ownership across instances (ocpp_connection, ocpp_outbox.sent_by)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ocpp_connection',
        sa.Column('station_id', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column('instance_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('connected_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('lease_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('station_id'),
    )
    with op.batch_alter_table('ocpp_connection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ocpp_connection_instance_id'), ['instance_id'], unique=False)
    # additive: rows written by older code have no sender and count as orphaned (requeued) if still "sent"
    with op.batch_alter_table('ocpp_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ocpp_outbox', schema=None) as batch_op:
        batch_op.drop_column('sent_by')
    with op.batch_alter_table('ocpp_connection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ocpp_connection_instance_id'))
    op.drop_table('ocpp_connection')
