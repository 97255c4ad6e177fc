"""Alembic environment: the URL and the metadata come from the app itself."""

from __future__ import annotations

from alembic import context

from app.settings import get_settings
from app.storage.db import engine_for
from app.storage.models import Base

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=get_settings().database_url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    with engine_for(settings.database_url).connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode changes a SQLite table by copy, drop and rename; with foreign keys on (the app's
            # engine turns them on), dropping `studies` cascades into every run and record. Off for the
            # migration (a no-op inside a transaction, so first), checked after, and on again for the pool.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
        finally:
            if sqlite:
                connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
