"""workers (one row per worker process: host, queues, device, what it trains, last heartbeat) and
studies.queue (the broker queue a study's runs are sent to; NULL: INITLAB_QUEUE)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 00:40:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'workers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('host', sa.String(length=200), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('queues', sa.JSON(), nullable=False),
        sa.Column('device', sa.String(length=200), nullable=True),
        sa.Column('backend', sa.String(length=32), nullable=True),
        sa.Column('current_runs', sa.JSON(), nullable=False),
        sa.Column('current_study', sa.Integer(), nullable=True),
        sa.Column('interval_s', sa.Float(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_heartbeat', sa.DateTime(timezone=True), nullable=False),
        sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name', name='uq_workers_name'),
    )
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('queue')
    op.drop_table('workers')
