"""layer_diagnostics: dead, saturated and identical units per run, epoch and layer

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 21:10:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('layer_diagnostics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('layer', sa.String(length=64), nullable=False),
    sa.Column('layer_index', sa.Integer(), nullable=False),
    sa.Column('activation', sa.String(length=32), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('dead_fraction', sa.Float(), nullable=True),
    sa.Column('saturated_fraction', sa.Float(), nullable=True),
    sa.Column('mean', sa.Float(), nullable=True),
    sa.Column('std', sa.Float(), nullable=True),
    sa.Column('unit_spread', sa.Float(), nullable=True),
    sa.Column('units_identical', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'epoch', 'layer', name='uq_layer_diagnostics_run_epoch_layer')
    )
    with op.batch_alter_table('layer_diagnostics', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_layer_diagnostics_run_id'), ['run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('layer_diagnostics', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_layer_diagnostics_run_id'))
    op.drop_table('layer_diagnostics')
