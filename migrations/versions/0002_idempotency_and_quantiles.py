"""idempotency key on studies, quantiles on layer stats

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:17:01.822328
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('layer_stats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quantiles', sa.JSON(), nullable=True))

    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint('uq_studies_idempotency_key', ['idempotency_key'])


def downgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_constraint('uq_studies_idempotency_key', type_='unique')
        batch_op.drop_column('idempotency_key')

    with op.batch_alter_table('layer_stats', schema=None) as batch_op:
        batch_op.drop_column('quantiles')


