"""SQLite: studies and runs never reuse the id of a deleted row (AUTOINCREMENT)

Without it SQLite gives a new row max(id) + 1, so deleting the newest study handed its id,
and its runs' ids, to the next study: a bookmark, a CLI command or a shared link to
/studies/5 then showed another study. PostgreSQL's sequences never reuse ids; nothing to do.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 12:00:00
"""
from __future__ import annotations

from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLES = ('studies', 'runs')


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:  # copy, drop, rename (migrations/env.py turns foreign keys off meanwhile)
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
