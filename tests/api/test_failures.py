"""GET /api/studies/{id}/failures after real tiny trainings through the worker's own path.

The API runs in-process on a migrated SQLite database; each study is created with POST
/api/studies and trained by ``worker.execution.execute_group`` (claim, fused training,
StorageSink with owner fencing, finish), as a Celery task would do it.
"""

from __future__ import annotations

import json

import pytest
from app.storage import runs as run_store  # noqa: E402
from support.factories import trained_study

pytestmark = pytest.mark.slow

SMALL = {"dataset": {"name": "fashion_mnist", "train_samples": 300, "validation_samples": 200},
         "bias_initializer": "zeros", "seeds": [0]}


def failures(client, study_id: int) -> dict:
    response = client.get(f"/api/studies/{study_id}/failures")
    assert response.status_code == 200, response.text
    return json.loads(response.text)


def test_zeros_and_ones_are_tagged_and_he_is_not(client):
    study = trained_study(client, SMALL, name="failures", model={"hidden_units": [32, 16], "activation": "relu"},
                          training={"epochs": 2, "batch_size": 32}, initializers=["zeros", "ones", "he_normal"])
    assert [run["status"] for run in study["runs"]] == ["succeeded"] * 3
    view = failures(client, study["id"])
    by_init = {run["initializer"]: run for run in view["runs"]}
    tags = {name: {tag["tag"]: tag["evidence"] for tag in run["tags"]} for name, run in by_init.items()}
    assert {"symmetric", "vanishing_gradients"} <= set(tags["zeros"])
    assert "symmetric" in tags["ones"]
    assert tags["he_normal"] == {}
    assert all(run["epochs_checked"] == [0, 2] and run["measured"] for run in view["runs"])
    assert sorted(item["layer"] for item in tags["zeros"]["symmetric"]) == ["dense_0", "dense_1"]
    for item in tags["zeros"]["symmetric"]:
        assert item["epoch"] == 2 and item["value"] == 0.0
        assert "identical" in item["detail"]
    # The matrix: one row per initializer, one column (relu), shares of the single seed.
    cells = {cell["key"]: cell for cell in view["matrix"]["cells"]}
    assert view["matrix"]["initializers"] == ["zeros", "ones", "he_normal"]
    assert view["matrix"]["activations"] == ["relu"]
    assert cells["zeros"]["shares"]["symmetric"] == 1.0 and cells["he_normal"]["shares"]["symmetric"] == 0.0
    assert cells["he_normal"]["runs"] == 1 and cells["he_normal"]["pending"] == 0
    assert [tag["tag"] for tag in view["tags"]] == ["diverged", "dead_relu", "saturated", "vanishing_gradients",
                                                   "exploding_gradients", "symmetric", "no_learning"]
    assert view["active"] is False


def test_a_diverged_run_is_tagged_with_its_epoch_and_a_nan_travels_as_text(client):
    study = trained_study(client, SMALL, name="diverges", model={"hidden_units": [32, 16], "activation": "linear"},
                          training={"epochs": 2, "batch_size": 32, "optimizer": "sgd", "learning_rate": 0.1},
                          initializers=["ones"])
    (run,) = study["runs"]
    assert run["status"] == "diverged"
    (tags,) = [r["tags"] for r in failures(client, study["id"])["runs"]]
    (diverged,) = [tag for tag in tags if tag["tag"] == "diverged"]
    assert diverged["evidence"][0]["epoch"] == run["diverged_epoch"] == 1
    assert diverged["evidence"][0]["value"] in ("NaN", "Infinity", "-Infinity")


def test_queued_runs_are_pending_and_the_view_says_it_is_active(client):
    response = client.post("/api/studies", json={**SMALL, "name": "waiting", "initializers": ["zeros", "he_normal"],
                                                 "model": {"hidden_units": [8]}, "training": {"epochs": 1}})
    view = failures(client, response.json()["id"])
    assert [run["initializer"] for run in view["runs"]] == ["zeros", "he_normal"]
    assert view["active"] is True and all(run["tags"] == [] and not run["measured"] for run in view["runs"])
    assert [cell["pending"] for cell in view["matrix"]["cells"]] == [1, 1]
    assert all(set(cell["shares"]) == {tag["tag"] for tag in view["tags"]} for cell in view["matrix"]["cells"])
    assert all(share is None for cell in view["matrix"]["cells"] for share in cell["shares"].values())


def test_unknown_study_is_404_and_a_bad_id_422_naming_the_field(client):
    assert client.get("/api/studies/999999/failures").status_code == 404
    response = client.get("/api/studies/0/failures")
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "study_id"


def test_diagnostics_writes_are_fenced_and_epoch_0_starts_afresh(client):
    from app.storage import diagnostics, records

    response = client.post("/api/studies", json={**SMALL, "name": "fenced", "initializers": ["he_normal"],
                                                 "model": {"hidden_units": [8]}, "training": {"epochs": 3}})
    run_id = response.json()["runs"][0]["id"]
    assert run_store.claim_run(run_id, worker_host="worker-a") is not None
    row = {"layer": "dense_0", "index": 0, "activation": "relu", "units": 8, "dead_fraction": 0.25,
           "saturated_fraction": None, "mean": 0.3, "std": float("nan"), "unit_spread": 1.2, "units_identical": False}
    for epoch in (0, 1, 2):
        diagnostics.record_diagnostics(run_id, epoch, [row], owner="worker-a")
    with pytest.raises(records.NotOwner):
        diagnostics.record_diagnostics(run_id, 3, [row], owner="worker-b")
    stored = diagnostics.run_diagnostics(run_id)
    assert [r["epoch"] for r in stored] == [0, 1, 2] and stored[0]["dead_fraction"] == 0.25
    assert stored[0]["std"] != stored[0]["std"]  # NaN survives SQLite
    diagnostics.record_diagnostics(run_id, 1, [row], owner="worker-a")  # a rewritten epoch replaces its rows
    assert [r["epoch"] for r in diagnostics.run_diagnostics(run_id)] == [0, 1, 2]
    diagnostics.record_diagnostics(run_id, 0, [row], owner="worker-a")  # a new attempt starts at epoch 0
    assert [r["epoch"] for r in diagnostics.run_diagnostics(run_id)] == [0]


def test_the_same_view_on_postgresql(migrated, data_dir, postgres_url):
    from fastapi.testclient import TestClient

    from app.main import create_app

    migrated(INITLAB_DATA_DIR=str(data_dir), INITLAB_DATABASE_URL=postgres_url)
    with TestClient(create_app()) as pg_client:
        study = trained_study(pg_client, SMALL, name="failures on postgres", model={"hidden_units": [8, 8]},
                              training={"epochs": 1, "batch_size": 32}, initializers=["zeros", "he_normal"])
        view = failures(pg_client, study["id"])
    assert [run["initializer"] for run in view["runs"]] == ["zeros", "he_normal"]
    tags = {run["initializer"]: {tag["tag"] for tag in run["tags"]} for run in view["runs"]}
    assert {"symmetric", "vanishing_gradients"} <= tags["zeros"] and tags["he_normal"] == set()
    assert all(run["epochs_checked"] == [0, 1] for run in view["runs"])


def test_a_cnn_with_batchnorm_gets_the_same_failure_tags(client):
    """Issue 12: the tags read each conv channel as a unit; zeros leave every channel dead and
    identical, He breaks the symmetry and keeps most channels alive."""
    study = trained_study(client, SMALL, name="cnn failures",
                          model={"family": "cnn", "conv_channels": [4, 8], "hidden_units": [16], "normalization": "batchnorm"},
                          training={"epochs": 1, "batch_size": 32}, initializers=["zeros", "he_normal"])
    assert [run["status"] for run in study["runs"]] == ["succeeded"] * 2
    view = failures(client, study["id"])
    tags = {run["initializer"]: {tag["tag"]: tag["evidence"] for tag in run["tags"]} for run in view["runs"]}
    assert {"symmetric", "dead_relu"} <= set(tags["zeros"])
    assert sorted(item["layer"] for item in tags["zeros"]["symmetric"]) == ["conv_0", "conv_1", "dense_0"]
    assert "symmetric" not in tags["he_normal"] and "dead_relu" not in tags["he_normal"]
    assert all(run["measured"] for run in view["runs"])
