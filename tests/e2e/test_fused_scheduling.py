"""Fused groups end to end on the embedded default (`initlab up`: API + 2 real worker processes).

A study's runs go out as groups of at most INITLAB_FUSE_MAX, the workers share them, a
failed group fails each of its runs with the reason, retry queues them again, and one
run of a group can be cancelled while its partners train on.
"""

from __future__ import annotations

import json
import re
import shutil
import signal

import pytest

from support import processes

pytestmark = pytest.mark.slow

TINY = {"dataset": {"name": "fashion_mnist", "train_samples": 300, "validation_samples": 200},
        "model": {"hidden_units": [16]}, "training": {"epochs": 2, "batch_size": 32},
        "initializers": ["glorot_uniform", "he_normal"], "seeds": [0, 1]}
IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def app(data_dir, tmp_path_factory):
    """`initlab up` with 2 workers and groups of at most 2; its MNIST files start out corrupt."""
    root = tmp_path_factory.mktemp("fused")
    data = root / "data"
    shutil.copytree(data_dir / "fashion_mnist", data / "fashion_mnist")
    (data / "mnist").mkdir()
    for name in IDX:
        (data / "mnist" / name).write_bytes(b"not gzip")
    env = {"INITLAB_STATE_DIR": str(root / "state"), "INITLAB_PORT": str(processes.free_port()),
           "INITLAB_DATA_DIR": str(data), "INITLAB_FUSE_MAX": "2", "INITLAB_WORKER_CONCURRENCY": "2"}
    log = root / "up.log"
    process = processes.start(["up"], env, log)
    base = f"http://127.0.0.1:{env['INITLAB_PORT']}"
    try:
        processes.wait_until_up(base, timeout=90)
        # Both training workers consuming, so that each takes one group (the probe worker,
        # initlab-probe, says "ready" too: counted, it let one worker take both groups under load).
        processes.wait_for(lambda: len(set(re.findall(r"(initlab-\d+)@\S+ ready\.", log.read_text()))) >= 2, 120,
                           what="2 training workers")
        yield base, data, log
    finally:
        processes.stop(process, signal.SIGINT)


def post(base: str, body: dict) -> dict:
    status, study = processes.http("POST", f"{base}/api/studies", body)
    assert status == 201, study
    return study


def test_a_study_trains_as_groups_shared_by_the_workers(app):
    base, _, log = app
    study = post(base, {"name": "groups", **TINY})
    done = processes.wait_for_study(base, study["id"], timeout=180)
    runs = done["runs"]
    assert [run["status"] for run in runs] == ["succeeded"] * 4, runs
    # Runs 1+2 and 3+4 were claimed together (one group each), by two different workers.
    hosts = [run["worker_host"] for run in runs]
    assert hosts[0] == hosts[1] and hosts[2] == hosts[3] and hosts[0] != hosts[2], hosts
    claims = [json.loads(line) for line in log.read_text().splitlines() if '"event":"run_claimed"' in line]
    groups = {tuple(claim["group"]) for claim in claims if claim["group"]}
    assert {tuple(run["id"] for run in runs[:2]), tuple(run["id"] for run in runs[2:])} <= groups, claims

    _, metrics = processes.http("GET", f"{base}/api/studies/{study['id']}/metrics")
    assert [run["run_id"] for run in metrics["runs"]] == [run["id"] for run in runs]
    for run in metrics["runs"]:
        assert [epoch["epoch"] for epoch in run["epochs"]] == [1, 2]
        assert all(0.0 <= epoch["val_accuracy"] <= 1.0 and epoch["seconds"] > 0 for epoch in run["epochs"])
    for run in runs:
        _, layers = processes.http("GET", f"{base}/api/runs/{run['id']}/layers?epoch=2")
        assert layers["available_epochs"] == [0, 1, 2]
        assert [layer["layer"] for layer in layers["layers"]] == ["dense_0", "output"]
        assert sum(layers["layers"][0]["kernel"]["counts"]) == 784 * 16
        assert layers["layers"][0]["gradient"]["norm"] > 0
    # Different seeds and schemes train differently inside one group.
    finals = {run["run_id"]: run["epochs"][-1]["loss"] for run in metrics["runs"]}
    assert len(set(finals.values())) == 4


def test_a_failed_group_fails_each_run_with_the_reason_and_retry_requeues(app, data_dir):
    base, data, _ = app
    study = post(base, {"name": "corrupt data", **TINY, "dataset": {"name": "mnist", "train_samples": 300,
                                                                     "validation_samples": 200}})
    done = processes.wait_for_study(base, study["id"], timeout=180)
    assert [run["status"] for run in done["runs"]] == ["failed"] * 4
    for run in done["runs"]:
        assert "not a readable gzip file" in run["error"], run["error"]

    for name in IDX:  # repair the data, then retry every run
        shutil.copyfile(data_dir / "mnist" / name, data / "mnist" / name)
    for run in done["runs"]:
        status, retried = processes.http("POST", f"{base}/api/runs/{run['id']}/retry")
        assert status == 200 and retried["status"] in ("queued", "running"), retried
    again = processes.wait_for_study(base, study["id"], timeout=180)
    assert [run["status"] for run in again["runs"]] == ["succeeded"] * 4, again["runs"]
    assert all(run["error"] is None and run["epoch"] == 2 for run in again["runs"])


def test_one_run_of_a_group_is_cancelled_while_its_partner_trains_on(app):
    base, _, _ = app
    long = {"name": "cancel one", **TINY, "dataset": {"name": "fashion_mnist"}, "training": {"epochs": 60}}
    study = post(base, long)
    first, partner = study["runs"][0]["id"], study["runs"][1]["id"]

    def run(run_id: int) -> dict:
        return processes.http("GET", f"{base}/api/runs/{run_id}")[1]

    processes.wait_for(lambda: run(first)["epoch"] >= 1, 120, what="the first epoch")
    processes.http("POST", f"{base}/api/runs/{first}/cancel")
    cancelled = processes.wait_for(lambda: (r := run(first))["status"] == "cancelled" and r, 60, what="the cancel")
    assert run(partner)["status"] == "running"
    # The partner (same group, same worker) keeps training after its neighbour stopped.
    processes.wait_for(lambda: run(partner)["epoch"] > cancelled["epoch"] + 1, 60, what="the partner to train on")
    _, metrics = processes.http("GET", f"{base}/api/studies/{study['id']}/metrics")
    epochs = {item["run_id"]: len(item["epochs"]) for item in metrics["runs"]}
    assert epochs[first] == cancelled["epoch"] < 60

    processes.http("POST", f"{base}/api/studies/{study['id']}/cancel")
    final = processes.wait_for_study(base, study["id"], timeout=60)
    assert {item["status"] for item in final["runs"]} == {"cancelled"}
