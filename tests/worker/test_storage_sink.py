"""The sink the worker hands to the training core: fenced writes, throttled progress, keepalive."""

from __future__ import annotations

import time

import pytest

from sqlalchemy import event as sql_event
from sqlalchemy.orm import Session

from app.storage import diagnostics, records, runs
from worker.storage_sink import StorageSink
from worker.training.sink import RunEpoch

SPEC = {"name": "sink", "initializers": ["he_normal"], "seeds": [0, 1], "training": {"epochs": 3}}
METRICS = {"loss": 1.0, "accuracy": 0.5, "val_loss": float("nan"), "val_accuracy": 0.4, "seconds": 0.1}
LAYERS = [{"layer": "dense_0", "index": 0, "kind": "kernel", "mean": 0.0, "std": 0.1, "min": -0.3, "max": 0.3,
           "l2": 1.0, "edges": [-0.3, 0.0, 0.3], "counts": [5, 5], "nonfinite": 0}]
DIAGNOSTICS = [{"layer": "dense_0", "index": 0, "activation": "relu", "units": 8, "dead_fraction": 0.25}]


@pytest.fixture
def group(store_study):
    ids = [run.id for run in store_study(SPEC, INITLAB_HEARTBEAT_INTERVAL_S="0.2").runs]
    for run_id in ids:
        runs.claim_run(run_id, worker_host="me:1")
    return ids


@pytest.fixture
def claimed(group):
    return group[0]


def _epoch(run_ids, epoch=1):
    return [RunEpoch(run_id, dict(METRICS) if epoch else None, LAYERS, DIAGNOSTICS) for run_id in run_ids]


def _epochs_of(run_id):
    study = records.study_metrics(runs.get_run(run_id).study_id)
    return next(run.epochs for run in study.runs if run.run_id == run_id)


def test_a_group_epoch_is_one_commit_with_every_runs_rows(group):
    commits = []
    listener = lambda session: commits.append(session)  # noqa: E731
    sql_event.listen(Session, "after_commit", listener)
    try:
        StorageSink("me:1").record(1, _epoch(group))
    finally:
        sql_event.remove(Session, "after_commit", listener)
    assert len(commits) == 1
    for run_id in group:
        (metrics,) = _epochs_of(run_id)
        assert metrics.epoch == 1 and metrics.loss == 1.0 and metrics.val_loss != metrics.val_loss  # NaN kept
        assert runs.get_run(run_id).epoch == 1
        assert [layer.layer for layer in records.run_layers(run_id, 1).layers] == ["dense_0"]
        assert [row["dead_fraction"] for row in diagnostics.run_diagnostics(run_id)] == [0.25]


def test_epoch_zero_writes_statistics_without_metrics(claimed):
    StorageSink("me:1").record(0, _epoch([claimed], epoch=0))
    assert _epochs_of(claimed) == [] and runs.get_run(claimed).epoch == 0
    assert [layer.layer for layer in records.run_layers(claimed, 0).layers] == ["dense_0"]


def test_a_run_taken_over_by_another_worker_is_fenced_and_stopped_while_the_rest_is_written(group):
    taken, kept = group
    sink = StorageSink("me:1")
    runs.release_run(taken, note="lease lost")
    runs.claim_run(taken, worker_host="other:2")
    sink.record(1, _epoch(group))
    assert sink.should_stop(taken) and not sink.should_stop(kept)
    assert _epochs_of(taken) == []  # nothing written under the new owner's run
    assert [metrics.epoch for metrics in _epochs_of(kept)] == [1]


def test_a_cancel_reaches_the_trainer_through_the_heartbeat(claimed):
    sink = StorageSink("me:1")
    sink.progress(claimed, 1, 0, 10)
    assert not sink.should_stop(claimed)
    runs.request_cancel([claimed])
    time.sleep(0.25)
    sink.progress(claimed, 1, 5, 10)
    assert sink.should_stop(claimed)


def test_progress_is_throttled_but_epoch_ends_always_land(claimed):
    sink = StorageSink("me:1")
    sink.progress(claimed, 1, 3, 10)
    sink.progress(claimed, 1, 4, 10)  # within the interval: skipped
    assert runs.get_run(claimed).batch == 3
    sink.progress(claimed, 1, 10, 10)  # the epoch's end always lands
    assert runs.get_run(claimed).batch == 10


def test_keepalive_renews_the_lease_while_training_is_silent(claimed):
    sink = StorageSink("me:1")
    before = runs.get_run(claimed)
    from app.storage.db import session_scope
    from app.storage.models import Run

    with session_scope() as session:
        first = session.get(Run, claimed).heartbeat_at
    with sink.keepalive([claimed]):
        time.sleep(0.7)
    with session_scope() as session:
        later = session.get(Run, claimed).heartbeat_at
    assert later > first and before.status == "running"
