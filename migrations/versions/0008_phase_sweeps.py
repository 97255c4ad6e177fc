"""runs.weight_variance, runs.bias_variance (weight-variance sweeps); layer_diagnostics.preact_length and
preact_correlation (the measured mean-field length and correlation of each layer's pre-activations)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 23:30:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('weight_variance', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('bias_variance', sa.Float(), nullable=True))
    with op.batch_alter_table('layer_diagnostics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('preact_length', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('preact_correlation', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('layer_diagnostics', schema=None) as batch_op:
        batch_op.drop_column('preact_correlation')
        batch_op.drop_column('preact_length')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('bias_variance')
        batch_op.drop_column('weight_variance')
