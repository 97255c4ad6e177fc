"""runs.environment: what trained a run besides its spec and seed

Keras draws other initial weights on JAX than on TensorFlow, and oneDNN's kernels round
differently from Eigen's, so one study gives other numbers in another environment. Each run
now keeps its backend, library versions, oneDNN flag, threads and data fingerprint; runs
trained before this column have NULL (unknown).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 15:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('environment', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('environment')
