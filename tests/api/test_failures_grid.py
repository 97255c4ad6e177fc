"""GET /api/studies/{id}/failures in a grid study: each run carries its grid cell (the summary's label) and
depth, and the matrix has one row per initializer and cell instead of pooling the depths."""

from __future__ import annotations

import json

from support.factories import record_run


def test_a_depth_grid_keeps_its_cells_apart(client):
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    study = studies.create_study(StudyCreate(
        name="failures grid", dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        model={"hidden_units": [16], "activation": "relu"}, training={"epochs": 2},
        initializers=["he_normal"], depths=[2, 4], seeds=[0, 1]))[0]
    for run in study.runs:
        record_run(run, [0.5, 0.6])
    response = client.get(f"/api/studies/{study.id}/failures")
    assert response.status_code == 200, response.text
    view = json.loads(response.text)
    assert [(run["cell"], run["depth"]) for run in view["runs"]] == [("2 layers", 2)] * 2 + [("4 layers", 4)] * 2
    summary = json.loads(client.get(f"/api/studies/{study.id}/summary?stats=false").text)
    assert {group["cell"] for group in summary["groups"]} == {run["cell"] for run in view["runs"]}
    rows = [(cell["key"], cell["cell"], cell["runs"]) for cell in view["matrix"]["cells"]]
    assert rows == [("he_normal", "2 layers", 2), ("he_normal", "4 layers", 2)]


def test_a_sweep_run_carries_its_variances(client):
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    study = studies.create_study(StudyCreate(
        name="failures sweep", dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        model={"hidden_units": [16], "activation": "tanh"}, training={"epochs": 1},
        weight_variances=[1.0, 2.0], bias_variances=[0.05], seeds=[0]))[0]
    for run in study.runs:
        record_run(run, [0.5])
    view = json.loads(client.get(f"/api/studies/{study.id}/failures").text)
    assert [(run["weight_variance"], run["bias_variance"], run["cell"]) for run in view["runs"]] == [
        (1.0, 0.05, "σ_b² 0.05"), (2.0, 0.05, "σ_b² 0.05")]
    assert len(view["matrix"]["cells"]) == 2
