"""The reconciler: a run whose worker died goes back to the queue (or fails after its attempts),
a queued run whose message the broker lost is sent again, and no probe waits forever.

Real storage (SQLite) and the real filesystem broker; the "dead worker" is a run claimed by
an owner that never sends a heartbeat again, which is what a SIGKILLed worker leaves behind.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app.storage import probes, runs
from app.storage.db import session_scope
from app.storage.models import Run, SignalProbe, utcnow
from worker import reconciler
from worker.broker_inspect import run_ids_in_messages

SPEC = {"name": "reconciler", "initializers": ["he_normal"], "seeds": [0, 1], "training": {"epochs": 1}}


@pytest.fixture
def stored(store_study):
    return store_study(SPEC, INITLAB_RUN_LEASE_S="60", INITLAB_MAX_ATTEMPTS="2", INITLAB_DISPATCH_GRACE_S="10",
                       INITLAB_PROBE_TIMEOUT_S="30")


def carried(state: Path) -> set[int]:
    """Run ids the training queue's messages carry (decoded as the reconciler decodes them)."""
    return run_ids_in_messages(path.read_bytes() for path in (state / "broker" / "in").glob("*.initlab.msg"))


def age(table, ids, **columns) -> None:
    """Move timestamps into the past, as a worker that stopped writing leaves them."""
    past = {name: utcnow() - timedelta(seconds=seconds) for name, seconds in columns.items()}
    with session_scope() as session:
        session.execute(update(table).where(table.id.in_(ids)).values(**past))


def test_a_run_whose_lease_ran_out_is_queued_again_and_sent(stored, tmp_path):
    run_id = stored.runs[0].id
    assert runs.claim_run(run_id, worker_host="dead:1") is not None
    age(Run, [run_id], heartbeat_at=120)
    assert reconciler.sweep_orphaned_runs() == [run_id]
    run = runs.get_run(run_id)
    assert (run.status, run.attempts, run.error) == ("queued", 1, "worker lost; requeued")
    # Sent again: a message now carries it, and the run never sent before goes out with it.
    assert carried(tmp_path / "state") == {run.id for run in stored.runs}


def test_a_fresh_heartbeat_keeps_the_run(stored):
    run_id = stored.runs[0].id
    runs.claim_run(run_id, worker_host="alive:1")
    assert reconciler.sweep_orphaned_runs() == []
    assert runs.get_run(run_id).status == "running"


def test_a_run_lost_max_attempts_times_fails_with_the_reason(stored):
    run_id = stored.runs[0].id
    for _ in range(2):
        runs.claim_run(run_id, worker_host="dead:1")
        age(Run, [run_id], heartbeat_at=120)
        reconciler.sweep_orphaned_runs()
    run = runs.get_run(run_id)
    assert run.status == "failed" and "lost 2 times" in run.error


def test_a_queued_run_whose_message_is_gone_is_sent_again(stored, tmp_path):
    ids = [run.id for run in stored.runs]
    assert sorted(runs.take_undispatched_runs(ids)) == ids  # "sent", but the broker never got it
    age(Run, ids, enqueued_at=60)
    assert carried(tmp_path / "state") == set()
    assert sorted(reconciler.forget_lost_messages()) == ids
    reconciler.sweep_orphaned_runs()
    assert carried(tmp_path / "state") == set(ids)


def test_a_recently_sent_run_is_left_alone(stored):
    ids = [run.id for run in stored.runs]
    runs.take_undispatched_runs(ids)
    assert reconciler.forget_lost_messages() == []  # within the grace: the message may be on its way


def test_a_probe_no_worker_finished_is_failed_and_can_be_asked_again(stored):
    probe, to_send = probes.probe_for("k" * 64, {"initializers": ["he_normal"]})
    assert to_send and probe["status"] == "queued"
    age(SignalProbe, [probe["id"]], created_at=60)
    reconciler.sweep_orphaned_runs()
    failed = probes.get_probe(probe["id"])
    assert failed["status"] == "failed" and "no worker finished this probe" in failed["error"]
    again, to_send = probes.probe_for("k" * 64, {"initializers": ["he_normal"]})
    assert to_send and again["id"] == probe["id"] and again["status"] == "queued"


# -- issue 11: a cancel always ends in `cancelled`; a retry starts a fresh attempt budget ----------


def test_a_lost_run_whose_cancel_was_pending_ends_cancelled(stored, tmp_path):
    """Cancel a running run, then lose its worker before it sees the flag: it used to go back to
    `queued` with the flag still set, which claim_run refuses, so it stayed queued for ever."""
    run_id = stored.runs[0].id
    runs.claim_run(run_id, worker_host="dead:1")
    runs.request_cancel([run_id])
    age(Run, [run_id], heartbeat_at=120)
    assert reconciler.sweep_orphaned_runs() == []
    run = runs.get_run(run_id)
    assert run.status == "cancelled" and "cancelled" in run.error and run.finished_at is not None
    assert run_id not in carried(tmp_path / "state")  # never sent again
    assert runs.reset_for_retry(run_id)  # and Retry works (it answered 409 while the run sat queued)


def test_a_pending_cancel_wins_over_used_up_attempts(stored):
    run_id = stored.runs[0].id
    runs.claim_run(run_id, worker_host="dead:1")
    age(Run, [run_id], heartbeat_at=120)
    reconciler.sweep_orphaned_runs()
    runs.claim_run(run_id, worker_host="dead:2")  # attempt 2 of 2
    runs.request_cancel([run_id])
    age(Run, [run_id], heartbeat_at=120)
    reconciler.sweep_orphaned_runs()
    assert runs.get_run(run_id).status == "cancelled"


def test_a_worker_shutting_down_ends_a_run_with_a_pending_cancel_cancelled(stored):
    """Ctrl-C of `initlab up`: the worker releases its interrupted runs; one whose cancel was asked
    is not put back in the queue."""
    cancelled, other = (run.id for run in stored.runs)
    for run_id in (cancelled, other):
        runs.claim_run(run_id, worker_host="me:1")
    runs.request_cancel([cancelled])
    assert runs.release_run(cancelled, note="interrupted by a worker shutdown; requeued", owner="me:1") == "cancelled"
    assert runs.release_run(other, note="interrupted by a worker shutdown; requeued", owner="me:1") == "queued"
    assert runs.get_run(cancelled).status == "cancelled"
    assert runs.get_run(other).status == "queued"
    assert runs.claim_run(other, worker_host="next:1") is not None  # the other one trains again


def test_a_queued_run_left_with_a_cancel_flag_is_cancelled_by_the_sweep(stored, tmp_path):
    """What the old release_run left behind: queued, flagged, refused by every claim."""
    run_id = stored.runs[0].id
    with session_scope() as session:
        session.execute(update(Run).where(Run.id == run_id).values(cancel_requested=True))
    assert runs.claim_run(run_id, worker_host="w:1") is None
    reconciler.sweep_orphaned_runs()
    assert runs.get_run(run_id).status == "cancelled"
    assert carried(tmp_path / "state") == {stored.runs[1].id}


def test_a_retry_starts_a_fresh_attempt_budget(stored):
    """Three cancel/retry cycles, then one worker crash: the run is requeued, not failed with
    "the worker was lost 4 times" (INITLAB_MAX_ATTEMPTS is 2 here)."""
    run_id = stored.runs[0].id
    for _ in range(3):
        runs.claim_run(run_id, worker_host="w:1")
        runs.request_cancel([run_id])
        assert runs.finish_run(run_id, "cancelled", owner="w:1")
        assert runs.reset_for_retry(run_id)
        assert runs.get_run(run_id).attempts == 0
    assert runs.claim_run(run_id, worker_host="dead:1").attempts == 1
    age(Run, [run_id], heartbeat_at=120)
    assert reconciler.sweep_orphaned_runs() == [run_id]
    run = runs.get_run(run_id)
    assert (run.status, run.attempts) == ("queued", 1)


# -- QA pass: a warm shutdown is no lost worker; a requeued run claims no progress -----------------

SHUTDOWN = "interrupted by a worker shutdown; requeued"  # worker/execution.py's note


def _train_a_little(run_id: int, owner: str) -> None:
    """What an attempt leaves: two epochs of metrics, layer statistics, diagnostics, a device."""
    from app.storage import diagnostics, records

    for epoch in (1, 2):
        records.record_epoch(run_id, epoch, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4,
                                             "seconds": 1.0}, owner=owner)
        records.record_layers(run_id, epoch, [{"layer": "dense_0", "index": 0, "kind": "kernel", "mean": 0.0,
                                               "std": 0.1, "min": -1.0, "max": 1.0, "l2": 2.0, "nonfinite": 0,
                                               "edges": [-1.0, 0.0, 1.0], "counts": [3, 4]}], owner=owner)
        diagnostics.record_diagnostics(run_id, epoch, [{"layer": "dense_0", "index": 0, "activation": "relu",
                                                        "units": 8, "dead_fraction": 0.25,
                                                        "saturated_fraction": 0.0}], owner=owner)
    runs.set_device(run_id, "CPU", {"backend": "tensorflow", "onednn": True})
    assert not runs.heartbeat(run_id, epoch=2, batch=3, batches=10, owner=owner)


def _progress(run_id: int) -> tuple:
    """What the run claims: its progress fields, then its rows of metrics, layer statistics, diagnostics."""
    from sqlalchemy import func, select

    from app.storage.models import EpochMetric, LayerDiagnostic, LayerStat

    run = runs.get_run(run_id)
    with session_scope() as session:
        rows = tuple(session.scalar(select(func.count()).select_from(table).where(table.run_id == run_id))
                     for table in (EpochMetric, LayerStat, LayerDiagnostic))
    return (run.status, run.epoch, run.batch, run.batches, run.worker_host, run.device, run.environment, run.started_at) + rows


def test_warm_shutdowns_use_no_attempt_so_one_crash_is_retried(stored):
    """Ctrl-C of `initlab up` twice (each worker also claims and gives back its prefetched runs), then one
    kill -9: the run used to fail with "the worker was lost 2 times" (INITLAB_MAX_ATTEMPTS is 2 here)."""
    run_id = stored.runs[0].id
    for cycle in range(3):
        assert runs.claim_run(run_id, worker_host=f"up{cycle}:1").attempts == 1
        assert runs.release_run(run_id, note=SHUTDOWN, owner=f"up{cycle}:1") == "queued"
        assert runs.get_run(run_id).attempts == 0  # given back on purpose: no attempt used
    runs.claim_run(run_id, worker_host="dead:1")
    age(Run, [run_id], heartbeat_at=120)
    assert reconciler.sweep_orphaned_runs() == [run_id]  # one real loss: queued again
    assert runs.get_run(run_id).attempts == 1
    runs.claim_run(run_id, worker_host="dead:2")
    age(Run, [run_id], heartbeat_at=120)
    reconciler.sweep_orphaned_runs()
    run = runs.get_run(run_id)
    assert run.status == "failed" and "the worker was lost 2 times" in run.error  # the count is true


@pytest.mark.parametrize("how", ["worker lost", "warm shutdown"])
def test_a_run_put_back_in_the_queue_claims_no_progress(stored, how):
    """It read "queued, epoch 2 of 3, worker_host dead:1" and /metrics listed the epochs it will train again."""
    run_id = stored.runs[0].id
    runs.claim_run(run_id, worker_host="w:1")
    _train_a_little(run_id, "w:1")
    assert _progress(run_id)[1:6] + _progress(run_id)[-3:] == (2, 3, 10, "w:1", "CPU", 2, 2, 2)
    if how == "worker lost":
        age(Run, [run_id], heartbeat_at=120)
        assert reconciler.sweep_orphaned_runs() == [run_id]
    else:
        assert runs.release_run(run_id, note=SHUTDOWN, owner="w:1") == "queued"
    assert _progress(run_id) == ("queued", 0, 0, 0, None, None, None, None, 0, 0, 0)


def test_a_cancelled_or_failed_release_keeps_what_the_run_recorded(stored):
    """Only a run that trains again forgets its attempt: a cancelled or failed one keeps its epochs."""
    cancelled, failed = (run.id for run in stored.runs)
    for run_id in (cancelled, failed):
        runs.claim_run(run_id, worker_host="w:1")
        _train_a_little(run_id, "w:1")
    runs.request_cancel([cancelled])
    assert runs.release_run(cancelled, note=SHUTDOWN, owner="w:1") == "cancelled"
    assert runs.release_run(failed, note="worker lost; requeued", fail_with="lost for good") == "failed"
    for run_id in (cancelled, failed):
        run = runs.get_run(run_id)
        assert (run.epoch, run.worker_host, run.device, run.attempts) == (2, "w:1", "CPU", 1)
        assert _progress(run_id)[-3:] == (2, 2, 2)


def test_the_page_caches_drop_a_requeued_attempt_and_tell_the_next_one_apart(stored):
    """app/dashboard/cache.py keys a run by (attempts, started_at): a run lost (same attempts) and one
    given back (attempts taken back) must each get a key its stopped attempt's rows are not kept under."""
    from app.dashboard.cache import CACHE
    from app.storage import views

    run_id = stored.runs[0].id
    keys = []

    def aggregate():
        (row,) = [row for row in views.study_runs(stored.id) if row["id"] == run_id]
        keys.append((row["attempts"], row["started_at"]))
        return CACHE.aggregates([row])[run_id]

    runs.claim_run(run_id, worker_host="w:1")
    _train_a_little(run_id, "w:1")
    assert sorted(aggregate().epochs["kernel"]) == [1, 2]
    age(Run, [run_id], heartbeat_at=120)
    reconciler.sweep_orphaned_runs()  # lost: attempts stay 1
    assert aggregate().epochs == {} and aggregate().ranges == {}
    runs.claim_run(run_id, worker_host="w:2")
    _train_a_little(run_id, "w:2")
    aggregate()
    assert runs.release_run(run_id, note=SHUTDOWN, owner="w:2") == "queued"  # given back: attempts 2 -> 1
    assert aggregate().epochs == {}
    runs.claim_run(run_id, worker_host="w:3")
    assert aggregate().epochs == {}  # the third attempt recorded nothing yet
    claimed = [key for key in keys if key[1] is not None]
    assert len(set(claimed)) == 3 and len({started for _, started in claimed}) == 3, keys
