"""The embedded SQLite database behind another writer: a write waits INITLAB_LOCK_TIMEOUT_S, then the
API answers 503 with the reason and nothing changed (PostgreSQL's side: test_postgres.py)."""

from __future__ import annotations

import sqlite3
import time

from app.schemas.studies import StudyCreate


def test_a_cancel_behind_another_sqlite_writer_answers_503_then_goes_through(migrated):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import get_settings
    from app.storage import runs, studies
    from app.storage.db import sqlite_path

    migrated(INITLAB_LOCK_TIMEOUT_S="1")
    study = studies.create_study(StudyCreate(name="locked", initializers=["he_normal"], seeds=[0],
                                             training={"epochs": 1}))[0]
    run_id = study.runs[0].id
    runs.claim_run(run_id, "frozen:1")
    holder = sqlite3.connect(sqlite_path(get_settings().database_url), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's write transaction, stopped halfway
        with TestClient(create_app()) as client:
            started = time.monotonic()
            answer = client.post(f"/api/runs/{run_id}/cancel")
            assert answer.status_code == 503 and answer.headers["Retry-After"], answer.text
            assert "INITLAB_LOCK_TIMEOUT_S" in answer.json()["detail"]
            assert 0.9 < time.monotonic() - started < 10
            holder.execute("ROLLBACK")
            assert client.post(f"/api/runs/{run_id}/cancel").status_code == 200
            assert client.get(f"/api/runs/{run_id}").json()["status"] == "running"  # stops at its next check
    finally:
        holder.close()

