"""The sink the worker hands to the training core: fenced writes, throttled progress, keepalive."""

from __future__ import annotations

import time

import pytest

from app.storage import records, runs
from worker.storage_sink import StorageSink

SPEC = {"name": "sink", "initializers": ["he_normal"], "seeds": [0], "training": {"epochs": 3}}
METRICS = {"loss": 1.0, "accuracy": 0.5, "val_loss": float("nan"), "val_accuracy": 0.4, "seconds": 0.1}


@pytest.fixture
def claimed(store_study):
    run_id = store_study(SPEC, INITLAB_HEARTBEAT_INTERVAL_S="0.2").runs[0].id
    runs.claim_run(run_id, worker_host="me:1")
    return run_id


def test_writes_land_while_the_run_is_mine(claimed):
    sink = StorageSink("me:1")
    sink.record_epoch(claimed, 1, METRICS)
    ((metrics,),) = [run.epochs for run in records.study_metrics(runs.get_run(claimed).study_id).runs]
    assert metrics.epoch == 1 and metrics.loss == 1.0 and metrics.val_loss != metrics.val_loss  # NaN kept
    assert runs.get_run(claimed).epoch == 1


def test_a_run_taken_over_by_another_worker_is_fenced_and_stopped(claimed):
    sink = StorageSink("me:1")
    runs.release_run(claimed, note="lease lost")
    runs.claim_run(claimed, worker_host="other:2")
    sink.record_epoch(claimed, 1, METRICS)
    assert sink.should_stop(claimed)
    study_id = runs.get_run(claimed).study_id
    assert records.study_metrics(study_id).runs[0].epochs == []  # nothing written under the new owner's run


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
