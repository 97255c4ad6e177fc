"""execute_group: claim stored runs, train them with the settings their study was accepted with, finish them.

Real storage (SQLite), real tiny training (the training core in-process, no Celery).
"""

from __future__ import annotations

import pytest

from app.storage import runs
from worker.execution import execute_group, execute_run

pytestmark = pytest.mark.slow

SPEC = {"name": "execution", "dataset": {"name": "mnist", "train_samples": 200, "validation_samples": 100},
        "model": {"hidden_units": [8]}, "training": {"epochs": 1, "batch_size": 50},
        "initializers": ["he_normal", "zeros"], "seeds": [0], "activations": ["relu", "tanh"]}


def test_a_group_trains_cell_by_cell_and_finishes_each_run(store_study, data_dir):
    study = store_study(SPEC, INITLAB_DATA_DIR=str(data_dir))
    ids = [run.id for run in study.runs]
    outcomes = execute_group(ids)
    assert outcomes == {run_id: "succeeded" for run_id in ids}
    finished = [runs.get_run(run_id) for run_id in ids]
    assert [(run.status, run.epoch, run.device, run.attempts) for run in finished] == [("succeeded", 1, "CPU", 1)] * 4
    # What else decides the numbers is kept with each run (JAX draws other weights; oneDNN rounds otherwise).
    import keras
    import tensorflow as tf

    from worker.training.datasets import fingerprint

    environment = finished[0].environment
    assert all(run.environment == environment for run in finished)
    assert {key: environment[key] for key in ("backend", "keras", "tensorflow")} == {
        "backend": "tensorflow", "keras": keras.__version__, "tensorflow": tf.__version__}
    assert isinstance(environment["onednn"], bool) and environment["data"] == fingerprint("mnist", data_dir)
    assert environment["data"].startswith("sha256:") and len(environment["data"]) == 23
    assert execute_group(ids) == {}  # sent twice: claimed once, trained once


def test_limits_lowered_after_acceptance_do_not_fail_a_queued_run(store_study, data_dir, settings_env):
    """Limits apply when a study is accepted, not again on the worker (it used to re-check them)."""
    from app.settings import get_settings

    study = store_study({**SPEC, "activations": None, "initializers": ["he_normal"]}, INITLAB_DATA_DIR=str(data_dir))
    settings_env(INITLAB_DATA_DIR=str(data_dir), INITLAB_MAX_EPOCHS="0", INITLAB_MAX_HIDDEN_UNITS="1")  # same state dir
    assert get_settings().max_epochs == 0
    assert execute_run(study.runs[0].id) == "succeeded"


def test_a_missing_data_set_fails_the_run_with_the_reason(store_study, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    study = store_study({**SPEC, "activations": None, "initializers": ["he_normal"]},
                        INITLAB_DATA_DIR=str(tmp_path / "no-data"))
    assert execute_run(study.runs[0].id) == "failed"
    run = runs.get_run(study.runs[0].id)
    assert run.status == "failed" and "INITLAB_DATA_DIR" in run.error and "no-data" in run.error


def test_a_cancelled_run_is_not_trained(store_study, data_dir):
    study = store_study({**SPEC, "activations": None, "initializers": ["he_normal"]}, INITLAB_DATA_DIR=str(data_dir))
    run_id = study.runs[0].id
    runs.request_cancel([run_id])
    assert execute_run(run_id) == "skipped"
    assert runs.get_run(run_id).status == "cancelled"


def test_the_largest_initializer_values_accepted_train_to_a_result(store_study, data_dir):
    """Issue 11, §6: every number the API accepts is one the worker can use. At the bounds of the
    registry's rules (±1e6) each run ends succeeded or diverged (a result), never failed; a
    constant of 3.5e38, accepted before, failed in training (it is refused now: tests/domain)."""
    extreme = [{"id": "constant", "params": {"value": 1e6}},
               {"id": "random_normal", "params": {"mean": -1e6, "stddev": 1e6}},
               {"id": "random_uniform", "params": {"minval": -1e6, "maxval": 1e6}},
               {"id": "orthogonal", "params": {"gain": 1e6}},
               {"id": "custom", "params": {"scale": 1e6, "mode": "none", "distribution": "uniform"}}]
    study = store_study({**SPEC, "activations": None, "initializers": extreme,
                         "bias_initializer": {"id": "constant", "params": {"value": -1e6}}},
                        INITLAB_DATA_DIR=str(data_dir))
    ids = [run.id for run in study.runs]
    outcomes = execute_group(ids)
    assert set(outcomes) == set(ids) and set(outcomes.values()) <= {"succeeded", "diverged"}, [
        runs.get_run(run_id).error for run_id in ids]


def test_a_worker_claims_nothing_once_the_file_is_gone(store_study, tmp_path, caplog):
    """Issue 11, §7: the SQLite file removed (rm -rf of INITLAB_STATE_DIR): nothing is claimed or trained."""
    import shutil

    stored = store_study(SPEC)
    shutil.rmtree(tmp_path / "state")
    with caplog.at_level("ERROR", logger="initlab.events"):
        assert execute_group([run.id for run in stored.runs]) == {}
    assert '"event":"work_refused"' in caplog.text and "initlab.sqlite was removed" in caplog.text


def test_a_worker_shutting_down_gives_its_runs_back_without_using_an_attempt(store_study, data_dir):
    """Ctrl-C while a run trains, then a prefetched message claimed while the worker stops: each time the
    run goes back to the queue as if never started (QA pass: attempts 2 for runs that never trained an epoch,
    and "queued, epoch 1 of 3" with its epoch rows listed)."""
    from app.storage import records

    study = store_study({**SPEC, "activations": None, "initializers": ["he_normal"],
                         "training": {"epochs": 3, "batch_size": 50}}, INITLAB_DATA_DIR=str(data_dir))
    run_id = study.runs[0].id
    assert execute_run(run_id, stop_event=lambda: runs.get_run(run_id).epoch >= 1) == "requeued"
    run = runs.get_run(run_id)
    assert (run.status, run.attempts, run.epoch, run.worker_host, run.device, run.started_at) == \
        ("queued", 0, 0, None, None, None)
    assert records.study_metrics(study.id).runs[0].epochs == [] and records.run_layers(run_id).available_epochs == []
    assert execute_run(run_id, stop_event=lambda: True) == "requeued"
    assert runs.get_run(run_id).attempts == 0
    assert execute_run(run_id) == "succeeded"
    assert (runs.get_run(run_id).attempts, runs.get_run(run_id).epoch) == (1, 3)
