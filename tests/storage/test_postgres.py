"""The storage layer against a real PostgreSQL, migrated by Alembic."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from app.schemas.studies import StudyCreate
from app.storage import runs as run_store  # noqa: E402


@pytest.fixture
def pg(migrated, postgres_url, tmp_path):
    migrated(INITLAB_DATABASE_URL=postgres_url)
    from sqlalchemy import text

    from app.storage.db import get_engine

    with get_engine().begin() as connection:  # the session database is shared by this file's tests
        connection.execute(text("TRUNCATE studies, runs, epoch_metrics, layer_stats RESTART IDENTITY CASCADE"))
    return postgres_url


def _study():
    from app.storage import studies

    spec = StudyCreate(name="pg", initializers=["he_normal", "zeros"], seeds=[3, 4],
                       training={"epochs": 2}, dataset={"name": "mnist", "train_samples": 100})
    return studies.create_study(spec)[0]


def _layer(kind: str, value: float) -> dict:
    return {"layer": "dense_0", "index": 0, "kind": kind, "mean": value, "std": 0.1, "min": -1.0, "max": 1.0,
            "l2": 2.0, "nonfinite": 0, "edges": [-1.0, 0.0, 1.0], "counts": [3, 4]}


def test_claim_is_atomic_and_clears_an_earlier_attempt(pg):
    from app.storage import records

    run_id = _study().runs[0].id
    assert run_store.claim_run(run_id, "host:1").status == "running"
    assert run_store.claim_run(run_id, "host:2") is None  # a second worker gets nothing
    records.record_epoch(run_id, 1, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4, "seconds": 1})
    assert run_store.release_run(run_id, "worker stopped")
    assert records.study_metrics(_study_id(run_id)).runs[0].epochs == []  # queued: it claims no epoch it will redo
    again = run_store.claim_run(run_id, "host:3")
    assert again.attempts == 2 and again.worker_host == "host:3"
    assert records.study_metrics(again.study_id).runs[0].epochs == []  # earlier epochs replaced, not duplicated


def test_rewriting_an_epoch_never_duplicates_rows_and_keeps_nan(pg):
    from sqlalchemy import func, select

    from app.storage import records
    from app.storage.db import session_scope
    from app.storage.models import EpochMetric, LayerStat

    run_id = _study().runs[1].id
    run_store.claim_run(run_id)
    for _ in range(2):
        records.record_epoch(run_id, 1, {"loss": float("nan"), "accuracy": 0.1, "val_loss": float("inf"),
                                         "val_accuracy": 0.1, "seconds": 0.2})
        records.record_layers(run_id, 0, [_layer("kernel", float("nan")), _layer("bias", 0.0), _layer("gradient", 0.5)])
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(EpochMetric)) == 1
        assert session.scalar(select(func.count()).select_from(LayerStat)) == 3
    epoch = records.study_metrics(_study_id(run_id)).runs[1].epochs[0]
    assert math.isnan(epoch.loss) and math.isinf(epoch.val_loss)
    layers = records.run_layers(run_id, 0)
    assert layers.available_epochs == [0]
    assert math.isnan(layers.layers[0].kernel.mean) and layers.layers[0].gradient.norm == 2.0
    assert layers.layers[0].kernel.counts == [3, 4]


def _study_id(run_id: int) -> int:

    return run_store.get_run(run_id).study_id


def test_cancel_retry_and_orphan_detection(pg):
    from app.storage import studies

    study = _study()
    queued, running = study.runs[0].id, study.runs[1].id
    run_store.claim_run(running)
    run_store.request_cancel([queued, running])
    assert run_store.get_run(queued).status == "cancelled"
    assert run_store.heartbeat(running, batch=1, batches=10) is True  # the worker is told to stop
    run_store.finish_run(running, "cancelled")
    assert run_store.reset_for_retry(running) and run_store.get_run(running).status == "queued"
    assert not run_store.reset_for_retry(running)  # only failed or cancelled runs are retried
    run_store.claim_run(running)
    assert run_store.stale_running_runs(timedelta(seconds=60)) == []
    assert run_store.stale_running_runs(timedelta(seconds=-1)) == [running]
    listed = studies.list_studies(name_contains="p")
    assert listed[0].run_counts == {"cancelled": 1, "running": 1, "queued": 2}


def test_release_settles_a_pending_cancel_and_a_retry_resets_the_attempts(pg):
    """release_run's one UPDATE reads cancel_requested before clearing it, on PostgreSQL too."""
    study = _study()
    flagged, plain, failing = (run.id for run in study.runs[:3])
    for run_id in (flagged, plain, failing):
        run_store.claim_run(run_id, "host:1")
    run_store.request_cancel([flagged])
    assert run_store.release_run(flagged, "worker stopped", owner="host:1") == "cancelled"
    assert run_store.release_run(plain, "worker stopped", owner="host:1") == "queued"
    assert run_store.release_run(failing, "worker lost", fail_with="lost for good") == "failed"
    assert run_store.release_run(plain, "again") is None  # no longer running
    assert [(r.status, r.error) for r in map(run_store.get_run, (flagged, plain, failing))] == [
        ("cancelled", "cancelled; its worker stopped before it could finish"), ("queued", "worker stopped"),
        ("failed", "lost for good")]
    # Given back by its worker (a shutdown): no attempt used, no progress or worker kept; a failed one keeps both.
    released = run_store.get_run(plain)
    assert (released.attempts, released.epoch, released.worker_host, released.started_at) == (0, 0, None, None)
    assert (run_store.get_run(failing).attempts, run_store.get_run(failing).worker_host) == (1, "host:1")
    assert run_store.claim_run(plain, "host:2").attempts == 1
    assert run_store.reset_for_retry(flagged) and run_store.get_run(flagged).attempts == 0


def _cancel_requested(run_id: int) -> bool:
    from sqlalchemy import select

    from app.storage.db import session_scope
    from app.storage.models import Run

    with session_scope() as session:
        return session.scalar(select(Run.cancel_requested).where(Run.id == run_id))


def test_a_cancel_behind_a_held_row_lock_answers_503_in_time_and_changes_nothing(migrated, postgres_url):
    """A worker frozen inside a write holds its run's row: the API's cancel waits INITLAB_LOCK_TIMEOUT_S,
    not forever, and says why; once the lock is gone the same cancel goes through."""
    import time

    import psycopg
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from app.main import create_app
    from app.storage.db import get_engine

    migrated(INITLAB_DATABASE_URL=postgres_url, INITLAB_LOCK_TIMEOUT_S="1")
    with get_engine().begin() as connection:
        connection.execute(text("TRUNCATE studies, runs, epoch_metrics, layer_stats RESTART IDENTITY CASCADE"))
    run_id = _study().runs[0].id
    run_store.claim_run(run_id, "frozen:1")
    holder = psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://", 1))
    try:
        holder.execute("SELECT id FROM runs WHERE id = %s FOR UPDATE", (run_id,))  # the frozen writer's lock
        with TestClient(create_app()) as client:
            started = time.monotonic()
            answer = client.post(f"/api/runs/{run_id}/cancel")
            waited = time.monotonic() - started
            assert answer.status_code == 503 and answer.json()["retry"] is True, answer.text
            detail = answer.json()["detail"]
            assert "INITLAB_LOCK_TIMEOUT_S" in detail and "nothing was changed" in detail
            assert 0.9 < waited < 10
            assert _cancel_requested(run_id) is False
            holder.rollback()
            assert client.post(f"/api/runs/{run_id}/cancel").status_code == 200
            assert _cancel_requested(run_id) is True
    finally:
        holder.close()


def test_postgres_ends_a_session_left_idle_in_a_transaction(migrated, postgres_url):
    """The server ends a connection stopped between two statements of a transaction (INITLAB_IDLE_TRANSACTION_S),
    which frees whatever rows it held; one that goes on talking is left alone."""
    import time

    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from app.storage.db import get_engine

    migrated(INITLAB_DATABASE_URL=postgres_url, INITLAB_IDLE_TRANSACTION_S="0.5")
    with get_engine().connect() as connection:
        assert connection.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "500ms"
        assert connection.execute(text("SHOW lock_timeout")).scalar() == "30s"
        connection.execute(text("SELECT 1"))  # a transaction is open from here
        time.sleep(1.5)
        with pytest.raises(DBAPIError) as ended:
            connection.execute(text("SELECT 1"))
        assert ended.value.connection_invalidated  # so session_scope says StorageUnavailable and a worker retries


def test_two_worker_processes_under_one_name_keep_their_rows(pg):
    """Aware timestamps from PostgreSQL: the namesake check and the pruning of a lost one work there too."""
    from sqlalchemy import update

    from app.storage import workers
    from app.storage.db import session_scope
    from app.storage.models import Worker, utcnow

    with session_scope() as session:
        session.execute(Worker.__table__.delete())
    for pid in (101, 202):
        workers.register_worker("initlab@hostB", "hostB", pid, ["initlab"], 2.0)
    assert workers.beat("initlab@hostB", 101) and workers.beat("initlab@hostB", 202)
    assert [(w.name, w.pid) for w in workers.list_workers()] == [("initlab@hostB", 101), ("initlab@hostB", 202)]
    assert workers.namesakes("initlab@hostB", 101) == [202]
    with session_scope() as session:  # 202 is killed and goes silent
        session.execute(update(Worker).where(Worker.pid == 202).values(last_heartbeat=utcnow() - timedelta(seconds=60)))
    assert workers.namesakes("initlab@hostB", 101) == []
    assert [w.pid for w in workers.list_workers()] == [101]
