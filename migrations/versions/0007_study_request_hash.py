"""studies.request_hash: the same Idempotency-Key with a different study is refused

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for the studies stored before: they are hashed from their stored spec when a key repeats.
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_hash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('request_hash')
