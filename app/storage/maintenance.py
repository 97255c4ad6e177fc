"""Giving a database's free pages back to the disk after big studies were deleted.

SQLite keeps a deleted study's pages in the file for later rows: deleting a big study (its
layer statistics are most of the file) leaves the file its size. ``VACUUM`` rewrites the file without
them; it needs as much free disk again as the file holds and takes every lock while it runs,
so it is a command a person runs (``initlab compact``), not something the app does on its own.
PostgreSQL's autovacuum already makes deleted rows' space reusable; ``VACUUM (ANALYZE)`` does
that at once and refreshes the planner's statistics, but gives the disk back only for pages at
the end of a table (``VACUUM FULL`` would, locking the tables for the whole rewrite: left to the
operator).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from app.storage.db import engine_for, sqlite_path

TABLES = ("layer_stats", "layer_diagnostics", "epoch_metrics", "runs", "studies")


@dataclass(frozen=True)
class Compacted:
    """What ``compact`` did: the database's size on disk before and after, in bytes."""

    kind: str  # "sqlite" or "postgresql"
    before: int
    after: int


def _sqlite_bytes(path) -> int:
    """The file and its write-ahead log: what the state directory holds for the database."""
    return sum(part.stat().st_size for part in (path, path.with_name(path.name + "-wal")) if part.exists())


def compact(url: str) -> Compacted:
    """Return deleted studies' space to the disk (SQLite) or to the tables (PostgreSQL)."""
    engine = engine_for(url)
    path = sqlite_path(url)
    if path is not None:
        before = _sqlite_bytes(path)
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.exec_driver_sql("VACUUM")
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return Compacted("sqlite", before, _sqlite_bytes(path))
    size = text("SELECT pg_database_size(current_database())")
    with engine.connect() as connection:
        before = int(connection.scalar(size))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in TABLES:  # VACUUM cannot run inside a transaction block
            connection.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
        after = int(connection.scalar(size))
    return Compacted("postgresql", before, after)
