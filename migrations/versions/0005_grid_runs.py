"""runs.activation and runs.depth: a study may vary the activation and the depth

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 21:30:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('activation', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('depth', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('depth')
        batch_op.drop_column('activation')
