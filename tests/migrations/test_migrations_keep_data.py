"""Migrations keep what users recorded: a database written at the first schema, upgraded to the
newest and downgraded again, still has its studies, runs and epochs (QA pass: on SQLite, batch
mode's copy-drop-rename of `studies` cascaded into every run and record)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def alembic(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), *args], cwd=ROOT,
                   env={**os.environ, **env}, check=True, capture_output=True, timeout=120)


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        return {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("studies", "runs", "epoch_metrics")}


@pytest.fixture
def first_schema_with_data(tmp_path):
    """A SQLite database at revision 0001 holding one study, its run and one recorded epoch."""
    path = tmp_path / "old.sqlite"
    env = {"INITLAB_DATABASE_URL": f"sqlite:///{path}", "INITLAB_STATE_DIR": str(tmp_path)}
    alembic(env, "upgrade", "0001")
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO studies (id, name, spec, created_at) VALUES "
                           "(1, 'kept', '{\"initializers\": [\"he_normal\"], \"seeds\": [0]}', '2026-11-01 00:00:00')")
        connection.execute("INSERT INTO runs (id, study_id, initializer, initializer_params, seed, status, epoch, "
                           "epochs, batch, batches, attempts, cancel_requested, created_at) VALUES "
                           "(1, 1, 'he_normal', '{}', 0, 'succeeded', 1, 1, 0, 0, 1, 0, '2026-11-01 00:00:00')")
        connection.execute("INSERT INTO epoch_metrics (run_id, epoch, loss, accuracy, val_loss, val_accuracy, seconds) "
                           "VALUES (1, 1, 0.5, 0.8, 0.6, 0.75, 1.0)")
    return path, env


def test_upgrading_and_downgrading_a_sqlite_database_keeps_its_runs(first_schema_with_data):
    path, env = first_schema_with_data
    alembic(env, "upgrade", "head")
    assert counts(path) == {"studies": 1, "runs": 1, "epoch_metrics": 1}
    alembic(env, "downgrade", "0008")  # drops a column of `studies`: another copy-drop-rename
    assert counts(path) == {"studies": 1, "runs": 1, "epoch_metrics": 1}
    alembic(env, "upgrade", "head")
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("DELETE FROM studies WHERE id = 1")  # the cascade itself still works afterwards
    assert counts(path) == {"studies": 0, "runs": 0, "epoch_metrics": 0}
