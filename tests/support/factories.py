"""Small factories: a study written straight through the storage layer, as a worker writes it."""

from __future__ import annotations

import math

import numpy as np

from app.storage import runs as run_store
from worker.training.stats import gradient_summary, tensor_summary

LAYERS = (("dense_0", (784, 16)), ("output", (16, 10)))


def layer_rows(rng: np.random.Generator, scale: float, epoch: int, quantiles: bool = True,
                diverged: bool = False) -> list[dict]:
    rows = []
    for index, (name, shape) in enumerate(LAYERS):
        kernel = rng.normal(0.01 * epoch, scale * (1 + 0.5 * epoch), size=shape)
        if diverged:
            kernel[0, :2] = [np.nan, np.inf]
        gradient = np.zeros(shape) if scale == 0 else rng.normal(0, 1e-3 / (1 + epoch), size=shape)
        for kind, summary in (("kernel", tensor_summary(kernel)), ("bias", tensor_summary(np.zeros(shape[1]))),
                              ("gradient", gradient_summary(gradient))):
            if not quantiles:
                summary.pop("quantiles")  # a row written before quantiles were stored
            rows.append({"layer": name, "index": index, "kind": kind, **summary})
    return rows


def write_study(name: str = "dashboard", epochs: int = 3, old_rows_epoch: int | None = 1) -> int:
    """he_normal and random_normal(stddev=0.01) x seeds 0, 1; random_normal seed 1 diverges at the last epoch."""
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    study = studies.create_study(StudyCreate(
        name=name, dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        model={"hidden_units": [16]}, training={"epochs": epochs},
        initializers=["he_normal", {"id": "random_normal", "params": {"stddev": 0.01}}], seeds=[0, 1]))[0]
    for number, run in enumerate(study.runs):
        rng = np.random.default_rng(number)
        run_store.claim_run(run.id, worker_host="test")
        he = run.initializer == "he_normal"
        diverges = not he and run.seed == 1
        for epoch in range(epochs + 1):
            records.record_layers(run.id, epoch, layer_rows(rng, 0.05 if he else 0.0, epoch, quantiles=epoch != old_rows_epoch,
                                                             diverged=diverges and epoch == epochs))
            if epoch == 0:
                continue
            accuracy = (0.8 if he else 0.5) + 0.03 * epoch + 0.01 * run.seed
            metrics = {"loss": 1.0 / epoch, "accuracy": accuracy, "val_loss": 1.1 / epoch, "val_accuracy": accuracy - 0.02,
                       "seconds": 2.0 if he else 3.0}
            if diverges and epoch == epochs:
                metrics.update(loss=math.nan, val_loss=math.inf, val_accuracy=0.1)
            records.record_epoch(run.id, epoch, metrics)
        run_store.finish_run(run.id, "failed" if diverges else "succeeded")
    return study.id


def trained_study(client, base: dict, **spec) -> dict:
    """``base`` updated with ``spec``, POSTed through the API and trained in this process (execute_group,
    as a worker's task would); the study as GET /api/studies/{id} then answers it."""
    from worker.execution import execute_group

    response = client.post("/api/studies", json={**base, **spec})
    assert response.status_code == 201, response.text
    study = response.json()
    execute_group([run["id"] for run in study["runs"]])
    return client.get(f"/api/studies/{study['id']}").json()


def training_study() -> tuple[int, int]:
    """A study of one running run with epoch 0 recorded; (study id, run id)."""
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    study = studies.create_study(StudyCreate(
        name="memo", dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        model={"hidden_units": [16]}, training={"epochs": 5}, initializers=["he_normal"], seeds=[0]))[0]
    run_id = study.runs[0].id
    run_store.claim_run(run_id, worker_host="test")
    records.record_layers(run_id, 0, layer_rows(np.random.default_rng(0), 0.05, 0))
    return study.id, run_id


def record_run(run, accuracies, status: str = "succeeded", nan_from: int | None = None) -> None:
    """One run claimed, its epochs' metrics written (accuracy as given, loss 1/epoch, NaN from
    ``nan_from`` on) and finished with ``status``: a run's results without training it."""
    from app.storage import records

    run_store.claim_run(run.id, worker_host="test")
    for epoch, accuracy in enumerate(accuracies, start=1):
        loss = math.nan if nan_from is not None and epoch >= nan_from else 1.0 / epoch
        records.record_epoch(run.id, epoch, {"loss": loss, "accuracy": accuracy, "val_loss": loss,
                                             "val_accuracy": accuracy, "seconds": 1.0})
    run_store.finish_run(run.id, status, **({"diverged_epoch": nan_from} if status == "diverged" else {}))
