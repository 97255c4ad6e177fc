"""Views kept per study version (app/dashboard/memo.py) and the aggregate cache's copies
(app/dashboard/cache.py): an answer is reused only while nothing it shows has changed."""

from __future__ import annotations

import numpy as np

from app.dashboard import histograms, summary
from app.dashboard.cache import CACHE
from app.dashboard.failures import failure_view
from app.dashboard.theory import theory_view
from app.schemas.studies import StudyCreate
from app.storage import diagnostics, records, runs, studies, views
from support.factories import layer_rows, training_study


def record(run_id: int, epoch: int) -> None:
    records.record_layers(run_id, epoch, layer_rows(np.random.default_rng(epoch), 0.05, epoch))
    records.record_epoch(run_id, epoch, {"loss": 1 / epoch, "accuracy": 0.5, "val_loss": 1 / epoch,
                                         "val_accuracy": 0.4 + 0.1 * epoch, "seconds": 1.0})


def test_views_are_reused_until_the_study_changes(sqlite_app):
    study_id, run_id = training_study()
    record(run_id, 1)
    first = summary.study_summary(study_id)
    assert summary.study_summary(study_id) is first  # nothing changed: the same answer
    assert summary.study_summary(study_id, max_points=2) is not first  # other arguments, another answer

    record(run_id, 2)
    second = summary.study_summary(study_id)
    assert second.groups[0].curves.epochs == [1, 2] and first.groups[0].curves.epochs == [1]

    view = histograms.histogram_view(study_id, "kernel", 0, 64, False)
    assert view.epochs == [0, 1, 2]
    records.record_layers(run_id, 3, layer_rows(np.random.default_rng(3), 0.05, 3))  # statistics alone
    assert histograms.histogram_view(study_id, "kernel", 0, 64, False).epochs == [0, 1, 2, 3]

    before = failure_view(study_id)
    assert failure_view(study_id) is before
    diagnostics.record_diagnostics(run_id, 3, [{"layer": "dense_0", "index": 0, "activation": "relu", "units": 16,
                                                "dead_fraction": 1.0, "saturated_fraction": 0.0}])
    assert failure_view(study_id) is not before

    runs.finish_run(run_id, "succeeded")
    assert summary.study_summary(study_id).status == "succeeded"


def test_theory_view_is_the_routes_answer_and_kept(sqlite_app):
    study_id, run_id = training_study()
    view = theory_view(study_id, "kernel")
    assert theory_view(study_id, "kernel") is view and theory_view(study_id, "bias") is not view
    assert sqlite_app.get(f"/api/studies/{study_id}/theory?kind=kernel").json()["layers"][0]["runs"][0]["run_id"] == run_id
    assert view.layers[0].runs[0].ks is not None
    record(run_id, 1)  # a later epoch: epoch 0, all the view reads, is unchanged
    assert theory_view(study_id, "kernel") is view
    runs.finish_run(run_id, "failed")
    runs.reset_for_retry(run_id)  # attempts count from 0 again: the new attempt is attempt 1 too
    runs.claim_run(run_id, worker_host="test")
    records.record_layers(run_id, 0, layer_rows(np.random.default_rng(9), 0.05, 0))
    assert theory_view(study_id, "kernel") is not view


def test_no_such_study_is_not_kept(sqlite_app):
    assert views.study_version(10_000) is None
    assert summary.study_summary(10_000) is None and failure_view(10_000) is None
    assert theory_view(10_000, "kernel") is None


def test_an_aggregate_once_handed_out_never_changes(sqlite_app):
    study_id, run_id = training_study()
    record(run_id, 1)
    handed_out = CACHE.aggregates(views.study_runs(study_id))[run_id]
    norms = {layer: dict(values) for layer, values in handed_out.norms.items()}
    record(run_id, 2)
    fresh = CACHE.aggregates(views.study_runs(study_id))[run_id]
    assert fresh is not handed_out and fresh.epoch == 2 and handed_out.epoch == 1
    assert handed_out.norms == norms and all(set(values) == {0, 1, 2} for values in fresh.norms.values())

    runs.finish_run(run_id, "failed")
    assert CACHE.aggregates(views.study_runs(study_id))[run_id].final
    runs.reset_for_retry(run_id)  # the new attempt is attempt 1 again: its rows are new all the same
    runs.claim_run(run_id, worker_host="test")
    records.record_layers(run_id, 0, layer_rows(np.random.default_rng(9), 0.05, 0))
    retried = CACHE.aggregates(views.study_runs(study_id))[run_id]
    assert retried.epoch == 0 and not retried.final


def test_requests_that_miss_together_compute_once(sqlite_app):
    import threading

    from app.dashboard.memo import ViewMemo

    study_id, _ = training_study()
    memo, calls, release = ViewMemo(), [], threading.Event()

    def compute():
        calls.append(1)
        release.wait(5)
        return {"answer": len(calls)}

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(memo.answer(study_id, "view", (), compute)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    while not calls:
        pass
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1 and answers == [{"answer": 1}] * 4
