"""runs.diverged_epoch: the epoch whose loss first became NaN or infinite

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 21:10:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('diverged_epoch', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('diverged_epoch')
