"""What every embedded SQLite connection is set up with (app/storage/db.py): a bounded WAL, Unicode case folding."""

from __future__ import annotations


def test_sqlite_cuts_its_write_ahead_log_back_after_checkpoints(migrated):
    """Deleting a 512-run study left a 1 GB WAL file behind; journal_size_limit bounds what stays."""
    from sqlalchemy import text

    from app.storage.db import get_engine

    migrated()
    with get_engine().connect() as connection:
        assert connection.execute(text("PRAGMA journal_size_limit")).scalar_one() == 64 * 1024 * 1024
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"


def test_the_name_filter_ignores_case_beyond_ascii_on_sqlite(migrated):
    """SQLite folded ASCII only: "étude" found none of 100 studies named "Étude …" (PostgreSQL found all)."""
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    migrated()
    for name in ("Étude – initialisation", "ÜBUNG straße", "plain"):
        studies.create_study(StudyCreate(name=name, initializers=["he_normal"], seeds=[0]))
    assert [s.name for s in studies.list_studies(name_contains="étude")] == ["Étude – initialisation"]
    assert [s.name for s in studies.list_studies(name_contains="übung")] == ["ÜBUNG straße"]
    assert studies.count_studies("ÉTUDE") == 1 and studies.count_studies("50%") == 0
