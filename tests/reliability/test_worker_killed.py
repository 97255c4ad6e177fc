"""SIGKILL the worker while a run trains after its first epoch: the run goes back to the
queue when its heartbeat lease runs out, a restarted worker trains it again from
scratch (recorded epochs are cleanly replaced), and nothing is duplicated. A run
that keeps killing its worker fails after INITLAB_MAX_ATTEMPTS with the reason."""

from __future__ import annotations

import signal

import pytest

from support import processes
from support.faults import record_counts, row_counts

pytestmark = pytest.mark.slow

EPOCHS = 4
# 625 steps an epoch: on a fast 2-core VM 6000 samples trained an epoch in less than the API was
# polled, so the second one could pass unseen.
STUDY = {"name": "worker killed", "dataset": {"name": "mnist", "train_samples": 20000, "validation_samples": 1000},
         "model": {"hidden_units": [64, 32]}, "training": {"epochs": EPOCHS, "batch_size": 32},
         "initializers": ["glorot_uniform"], "seeds": [1]}
FAST_LEASE = {"INITLAB_RUN_LEASE_S": "4", "INITLAB_HEARTBEAT_INTERVAL_S": "0.5"}


def _past_first_epoch(run_url: str) -> bool:
    """Recorded epoch 1 and still training (any of epochs 2 to EPOCHS)."""
    run = processes.http("GET", run_url)[1]
    return run["status"] == "running" and 1 <= run["epoch"] < EPOCHS


def test_killed_worker_run_is_retrained_once(make_stack, postgres_url):
    stack = make_stack(**FAST_LEASE)
    stack.start_api()
    worker = stack.start_worker()
    _, study = processes.http("POST", f"{stack.base}/api/studies", STUDY)
    run_url = f"{stack.base}/api/runs/{study['runs'][0]['id']}"
    processes.wait_for(lambda: _past_first_epoch(run_url), 120, interval=0.2, what="training past epoch 1")
    processes.stop(worker, signal.SIGKILL)
    assert processes.http("GET", run_url)[1]["status"] == "running"  # the database still believes it

    stack.start_worker()
    done = processes.wait_for_study(stack.base, study["id"], timeout=240)
    run = done["runs"][0]
    assert (run["status"], run["attempts"], run["epoch"]) == ("succeeded", 2, EPOCHS), (run, stack.worker_log())
    epoch_rows, distinct_epochs, layer_rows = row_counts(postgres_url, run["id"])
    assert (epoch_rows, distinct_epochs, layer_rows) == (EPOCHS, EPOCHS, (EPOCHS + 1) * 3 * 3)
    record_counts("worker SIGKILLed mid-epoch", submitted=1, completed=1,
                  duplicated=epoch_rows - distinct_epochs, lost=0)


def test_a_run_that_keeps_killing_its_worker_fails_with_the_reason(make_stack):
    stack = make_stack(INITLAB_MAX_ATTEMPTS="2", **FAST_LEASE)
    stack.start_api()
    _, study = processes.http("POST", f"{stack.base}/api/studies", {**STUDY, "name": "killer run"})
    run_url = f"{stack.base}/api/runs/{study['runs'][0]['id']}"
    for attempt in (1, 2):
        worker = stack.start_worker()
        processes.wait_for(lambda a=attempt: (r := processes.http("GET", run_url)[1])["status"] == "running"
                           and r["attempts"] == a and r["batch"] > 0, 120, interval=0.2, what=f"attempt {attempt}")
        processes.stop(worker, signal.SIGKILL)
    stack.start_worker()
    run = processes.wait_for(lambda: (r := processes.http("GET", run_url)[1])["status"] == "failed" and r, 60,
                             what="the run to fail")
    assert run["attempts"] == 2
    assert "worker was lost 2 times" in run["error"]
    record_counts("run that kills its worker", submitted=1, completed=0, duplicated=0, lost=0)
