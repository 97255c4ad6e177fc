"""GET /api/workers and a study's "queue" on the embedded default, in-process: a queue no live
worker serves is a 422 naming the field; the default queue is always accepted; a served one
routes the study's runs there."""

from __future__ import annotations

from pathlib import Path

from app.settings import get_settings
from app.storage import workers

STUDY = {"name": "routed", "dataset": {"name": "mnist", "train_samples": 300, "validation_samples": 200},
         "training": {"epochs": 1}, "initializers": ["he_normal"], "seeds": [0]}


def _messages(queue: str) -> int:
    inbox = Path(get_settings().broker_folder) / "in"
    return len([path for path in inbox.glob("*.msg") if path.name.partition(".")[2] == f"{queue}.msg"])


def test_no_workers_yet_and_the_default_queue_is_always_accepted(sqlite_app):
    assert sqlite_app.get("/api/workers").json() == {"default_queue": "initlab", "queues": [], "workers": []}
    plain = sqlite_app.post("/api/studies", json=STUDY)
    named = sqlite_app.post("/api/studies", json={**STUDY, "queue": "initlab"})
    assert (plain.status_code, named.status_code) == (201, 201), named.text
    assert (plain.json()["queue"], named.json()["queue"]) == ("initlab", "initlab")  # the default, stored
    assert "queue" not in named.json()["spec"]  # where a study trains is no part of its spec
    assert _messages("initlab") == 2
    refused = sqlite_app.post("/api/studies", json={**STUDY, "queue": "gpu"})
    assert refused.status_code == 422
    # QA pass: it said 'served now: "initlab"' with no worker alive.
    assert refused.json()["detail"][0]["msg"].endswith(
        'queues served now: none; the default queue "initlab" is always accepted (its runs wait for a worker)')


def test_a_queue_no_live_worker_serves_is_a_422_naming_the_field_and_the_served_queues(sqlite_app):
    workers.register_worker("cpu@hostA", "hostA", 11, ["initlab", "initlab.probe"], 5.0)
    response = sqlite_app.post("/api/studies", json={**STUDY, "queue": "gpu"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["field"], error["type"]) == ("queue", "queue_not_served")
    assert 'no live worker serves the queue "gpu"' in error["msg"]
    assert error["msg"].endswith('queues served now: "initlab"')
    assert sqlite_app.get("/api/studies").json() == []  # nothing stored
    bad = sqlite_app.post("/api/studies", json={**STUDY, "queue": "gpu queue!"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "queue"


def test_a_served_queue_gets_the_study_runs_and_the_workers_are_listed(sqlite_app):
    workers.register_worker("jax@gpuhost", "gpuhost", 22, ["gpu"], 5.0)
    workers.beat("jax@gpuhost", 22, device="NVIDIA H200", backend="jax", current_runs=[], current_study=None)
    response = sqlite_app.post("/api/studies", json={**STUDY, "queue": "gpu"}, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 201, response.text
    assert (response.json()["queue"], _messages("gpu"), _messages("initlab")) == ("gpu", 1, 0)
    again = sqlite_app.post("/api/studies", json={**STUDY, "queue": "gpu"}, headers={"Idempotency-Key": "k1"})
    assert (again.status_code, again.json()["id"]) == (200, response.json()["id"])
    elsewhere = sqlite_app.post("/api/studies", json=STUDY, headers={"Idempotency-Key": "k1"})
    assert elsewhere.status_code == 422  # the same key for the study sent to another queue
    listed = sqlite_app.get("/api/workers").json()
    assert listed["queues"] == ["gpu"]
    (worker,) = listed["workers"]
    assert {key: worker[key] for key in ("name", "host", "pid", "queues", "device", "backend", "state")} == {
        "name": "jax@gpuhost", "host": "gpuhost", "pid": 22, "queues": ["gpu"], "device": "NVIDIA H200",
        "backend": "jax", "state": "idle"}
    assert 0 <= worker["heartbeat_age_s"] < 60 and worker["interval_s"] == 5.0


def test_two_worker_processes_under_one_node_name_are_both_listed(sqlite_app):
    """`initlab worker` twice on one host: both initlab@hostB; the panel showed one row flipping between them."""
    for pid in (31, 32):
        workers.register_worker("initlab@hostB", "hostB", pid, ["initlab"], 5.0)
    for pid in (31, 32):
        assert workers.beat("initlab@hostB", pid, device="CPU", backend="tensorflow")
    listed = sqlite_app.get("/api/workers").json()["workers"]
    assert [(worker["name"], worker["pid"], worker["state"]) for worker in listed] == [
        ("initlab@hostB", 31, "idle"), ("initlab@hostB", 32, "idle")]
