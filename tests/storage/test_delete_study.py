"""Deleting a study takes its runs and every recorded row with it, on SQLite and on PostgreSQL, and
never while a run is queued or running."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from app.schemas.studies import StudyCreate
from app.storage import records, runs, studies
from app.storage.db import get_engine, session_scope
from app.storage.diagnostics import record_diagnostics
from app.storage.models import EpochMetric, LayerDiagnostic, LayerStat, Run, Study

LAYER = {"layer": "dense_0", "index": 0, "kind": "kernel", "mean": 0.0, "std": 0.1, "min": -1.0, "max": 1.0,
         "l2": 2.0, "nonfinite": 0, "edges": [-1.0, 0.0, 1.0], "counts": [3, 4]}
DIAGNOSTIC = {"layer": "dense_0", "index": 0, "activation": "relu", "units": 4, "dead_fraction": 0.25}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, migrated):
    if request.param == "sqlite":
        migrated()
        return
    url = request.getfixturevalue("postgres_url")
    migrated(INITLAB_DATABASE_URL=url)
    with get_engine().begin() as connection:  # the session database is shared by the PostgreSQL tests
        connection.execute(text("TRUNCATE studies, runs, epoch_metrics, layer_stats, layer_diagnostics "
                                "RESTART IDENTITY CASCADE"))


def _trained_study() -> tuple[int, list[int]]:
    """A study whose first run trained an epoch and is still running; the other runs queued."""
    spec = StudyCreate(name="doomed", initializers=["he_normal", "zeros"], seeds=[0],
                       training={"epochs": 2}, dataset={"name": "mnist", "train_samples": 100})
    study = studies.create_study(spec)[0]
    run_ids = [run.id for run in study.runs]
    runs.claim_run(run_ids[0], "host:1")
    records.record_epoch(run_ids[0], 1, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4,
                                         "seconds": 1.0})
    records.record_layers(run_ids[0], 1, [LAYER])
    record_diagnostics(run_ids[0], 1, [DIAGNOSTIC])
    return study.id, run_ids


def _rows(run_ids: list[int]) -> dict[str, int]:
    with session_scope() as session:
        return {table.__tablename__: session.scalar(select(func.count()).select_from(table)
                                                   .where(table.run_id.in_(run_ids)))
                for table in (EpochMetric, LayerStat, LayerDiagnostic)}


def test_a_finished_study_is_deleted_with_everything_recorded(database):
    study_id, run_ids = _trained_study()
    kept_id, kept_runs = _trained_study()
    assert _rows(run_ids) == {"epoch_metrics": 1, "layer_stats": 1, "layer_diagnostics": 1}

    assert studies.delete_study(study_id) is False  # one run is running, the other queued
    runs.request_cancel(run_ids)  # the queued one ends cancelled at once, the running one is asked
    assert studies.delete_study(study_id) is False  # still running until its worker stops it
    assert runs.finish_run(run_ids[0], "cancelled", owner="host:1")

    assert studies.delete_study(study_id) is True
    assert studies.get_study(study_id) is None
    assert _rows(run_ids) == {"epoch_metrics": 0, "layer_stats": 0, "layer_diagnostics": 0}
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Run).where(Run.id.in_(run_ids))) == 0
        assert session.scalar(select(func.count()).select_from(Study)) == 1
    assert studies.delete_study(study_id) is None
    # The other study is untouched.
    assert [run.id for run in studies.get_study(kept_id).runs] == kept_runs
    assert _rows(kept_runs) == {"epoch_metrics": 1, "layer_stats": 1, "layer_diagnostics": 1}


def test_a_deleted_studys_ids_are_never_given_to_a_new_one(database):
    """The newest study deleted, the next one gets new study and run ids (SQLite gave it the same ones,
    so a bookmark or `initlab export 5` showed another study; migration 0010)."""
    study_id, run_ids = _trained_study()
    runs.request_cancel(run_ids)
    assert runs.finish_run(run_ids[0], "cancelled", owner="host:1")
    assert studies.delete_study(study_id) is True
    again, next_runs = _trained_study()
    assert again > study_id and min(next_runs) > max(run_ids)
