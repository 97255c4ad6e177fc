"""End to end on the embedded default, started the way `make up` starts it: `initlab up`."""

from __future__ import annotations

import signal

import pytest

from support import processes

pytestmark = pytest.mark.slow


def _up(env, log):
    process = processes.start(["up"], env, log)
    base = f"http://127.0.0.1:{env['INITLAB_PORT']}"
    processes.wait_until_up(base, timeout=90)
    return process, base


def test_up_trains_a_study_and_ctrl_c_requeues_an_interrupted_run(data_dir, tmp_path):
    env = {"INITLAB_STATE_DIR": str(tmp_path / "state"), "INITLAB_PORT": str(processes.free_port()),
           "INITLAB_DATA_DIR": str(data_dir)}
    process, base = _up(env, tmp_path / "up.log")
    assert (tmp_path / "state" / "initlab.sqlite").exists()  # migrated SQLite under INITLAB_STATE_DIR
    small = {"name": "embedded", "dataset": {"name": "fashion_mnist", "train_samples": 300, "validation_samples": 200},
             "model": {"hidden_units": [32], "dropout": 0.2}, "training": {"epochs": 2},
             "initializers": ["glorot_uniform", "ones"], "seeds": [0]}
    status, study = processes.http("POST", f"{base}/api/studies", small)
    assert status == 201, study
    done = processes.wait_for_study(base, study["id"], timeout=180)
    assert [run["status"] for run in done["runs"]] == ["succeeded", "succeeded"], done["runs"]

    # A long run (all 60000 samples, many epochs); Ctrl-C while it trains.
    long = {**small, "name": "interrupted", "dataset": {"name": "mnist"}, "training": {"epochs": 50}, "initializers": ["he_normal"]}
    _, study = processes.http("POST", f"{base}/api/studies", long)
    run_url = f"{base}/api/runs/{study['runs'][0]['id']}"
    processes.wait_for(lambda: processes.http("GET", run_url)[1]["batch"] > 0, 120, what="training to start")
    seconds = processes.stop(process, signal.SIGINT)
    assert process.returncode == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert seconds < 10, f"Ctrl-C took {seconds:.1f}s"

    # Started again, the interrupted run is back in the queue and trains from scratch.
    process, base = _up(env, tmp_path / "up2.log")
    try:
        _, run = processes.http("GET", run_url)
        assert run["status"] in ("queued", "running"), run
        # Given back on Ctrl-C, not lost: no attempt used up, and no progress claimed while it waits.
        assert run["status"] == "running" or (run["attempts"], run["epoch"]) == (0, 0), run
        processes.wait_for(lambda: (r := processes.http("GET", run_url)[1])["status"] == "running"
                           and r["attempts"] == 1, 60, what="the run to restart")
        processes.http("POST", f"{run_url}/cancel")
        final = processes.wait_for(
            lambda: (r := processes.http("GET", run_url)[1])["status"] == "cancelled" and r, 60, what="cancel")
        assert final["epoch"] < 50
    finally:
        processes.stop(process, signal.SIGINT)
