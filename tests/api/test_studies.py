"""The REST contract on the embedded default (SQLite + filesystem broker), in-process."""

from __future__ import annotations

import math

import pytest
from app.storage import runs as run_store  # noqa: E402

STUDY = {
    "name": "api test",
    "dataset": {"name": "mnist", "train_samples": 300, "validation_samples": 200},
    "training": {"epochs": 2},
    "initializers": ["zeros", {"id": "random_normal", "params": {"stddev": 0.01}}],
    "seeds": [0, 1],
}


def test_create_study_queues_one_run_per_initializer_and_seed(sqlite_app):
    response = sqlite_app.post("/api/studies", json=STUDY)
    assert response.status_code == 201, response.text
    study = response.json()
    assert study["status"] == "queued"
    pairs = [(run["initializer"], run["seed"], run["status"], run["epochs"]) for run in study["runs"]]
    assert pairs == [("zeros", 0, "queued", 2), ("zeros", 1, "queued", 2),
                     ("random_normal", 0, "queued", 2), ("random_normal", 1, "queued", 2)]
    assert study["runs"][2]["initializer_params"] == {"stddev": 0.01}
    assert study["spec"]["model"]["hidden_units"] == [128, 64]  # defaults filled in
    assert sqlite_app.get(f"/api/studies/{study['id']}").json()["runs"] == study["runs"]
    listed = sqlite_app.get("/api/studies").json()
    assert listed[0]["id"] == study["id"] and listed[0]["run_counts"] == {"queued": 4}


@pytest.mark.parametrize(("patch", "field", "rule"), [
    ({"initializers": ["he_magic"]}, "initializers.0.id", "unknown initializer"),
    ({"training": {"epochs": 0}}, "training.epochs", "greater than or equal to 1"),
    ({"seeds": []}, "seeds", "at least 1 item"),
    ({"dataset": {"name": "cifar10"}}, "dataset.name", "unknown data set"),
    ({"initializers": []}, "initializers", "at least 1 item"),
    ({"initializers": [{"id": "zeros", "params": {"stddev": 1}}]}, "initializers.0", "no parameter(s) stddev"),
    ({"initializers": [{"id": "random_uniform", "params": {"minval": 1, "maxval": 0}}]}, "initializers.0", "minval"),
    ({"bias_initializer": "orthogonal"}, "bias_initializer", "cannot initialize a bias"),
    ({"model": {"hidden_units": [64], "dropout": 1.5}}, "model.dropout", "less than 1"),
    ({"model": {"activation": "swish"}}, "model.activation", "Input should be"),
    ({"seeds": [1, 1]}, "seeds", "distinct"),
    ({"initializers": ["random_normal", {"id": "random_normal", "params": {"stddev": 0.05}}]}, "initializers",
     "random_normal and random_normal(stddev=0.05) draw the same weights"),
    ({"surprise": True}, "surprise", "Extra inputs are not permitted"),
])
def test_bad_input_is_a_422_naming_field_and_rule(sqlite_app, patch, field, rule):
    response = sqlite_app.post("/api/studies", json={**STUDY, **patch})
    assert response.status_code == 422
    details = response.json()["detail"]
    assert any(item["field"] == field and rule in item["msg"] for item in details), details
    assert sqlite_app.get("/api/studies").json() == []  # nothing half-stored


def test_limits_come_from_settings(sqlite_app, monkeypatch):
    from app.settings import get_settings

    monkeypatch.setenv("INITLAB_MAX_EPOCHS", "3")
    get_settings.cache_clear()
    response = sqlite_app.post("/api/studies", json={**STUDY, "training": {"epochs": 4}})
    assert response.status_code == 422
    assert "at most 3 epochs (INITLAB_MAX_EPOCHS)" in response.json()["detail"][0]["msg"]


def test_malformed_json_is_a_422(sqlite_app):
    response = sqlite_app.post("/api/studies", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "body"


def test_catalog_reads_the_registries(sqlite_app):
    from app.domain.registry import REGISTRY

    initializers = sqlite_app.get("/api/initializers").json()
    assert [item["id"] for item in initializers] == list(REGISTRY)
    # Not two empty lists agreeing: the schemes the README, the presets and these tests name are there.
    assert {"zeros", "ones", "random_normal", "glorot_uniform", "he_normal", "he_uniform", "uniform_fan_in",
            "lsuv", "custom"} <= set(REGISTRY)
    assert all(set(item) >= {"id", "name", "formula", "params", "reference"} for item in initializers)
    assert {item["id"] for item in sqlite_app.get("/api/datasets").json()} == {"fashion_mnist", "mnist"}
    assert sqlite_app.get("/healthz").json() == {"status": "ok"}
    assert sqlite_app.get("/readyz").status_code == 200
    assert sqlite_app.get("/openapi.json").json()["paths"]["/api/studies"]["post"]


def test_nan_and_inf_survive_storage_and_json(sqlite_app):
    from app.storage import records

    study = sqlite_app.post("/api/studies", json=STUDY).json()
    run_id = study["runs"][0]["id"]
    run_store.claim_run(run_id)
    records.record_epoch(run_id, 1, {"loss": float("nan"), "accuracy": 0.1, "val_loss": float("inf"),
                                     "val_accuracy": 0.1, "seconds": 0.5})
    records.record_epoch(run_id, 1, {"loss": float("nan"), "accuracy": 0.1, "val_loss": float("inf"),
                                     "val_accuracy": 0.1, "seconds": 0.5})  # redelivered: replaces, never duplicates
    epochs = sqlite_app.get(f"/api/studies/{study['id']}/metrics").json()["runs"][0]["epochs"]
    assert epochs == [{"epoch": 1, "loss": "NaN", "accuracy": 0.1, "val_loss": "Infinity", "val_accuracy": 0.1,
                       "seconds": 0.5}]
    assert math.isnan(records.study_metrics(study["id"]).runs[0].epochs[0].loss)


def test_unknown_ids_are_404(sqlite_app):
    assert sqlite_app.get("/api/studies/999").status_code == 404
    assert sqlite_app.get("/api/runs/999").status_code == 404
    assert sqlite_app.get("/api/runs/999/layers?epoch=0").status_code == 404


def test_a_retried_run_claims_no_progress_while_it_waits(sqlite_app):
    from app.storage import records

    study = sqlite_app.post("/api/studies", json=STUDY).json()
    run_id = study["runs"][0]["id"]
    run_store.claim_run(run_id, worker_host="host:1")
    records.record_epoch(run_id, 1, {"loss": 2.0, "accuracy": 0.1, "val_loss": 2.0, "val_accuracy": 0.1, "seconds": 1})
    run_store.finish_run(run_id, "failed", error="boom")
    retried = sqlite_app.post(f"/api/runs/{run_id}/retry").json()
    assert (retried["status"], retried["epoch"], retried["worker_host"], retried["error"]) == ("queued", 0, None, None)
    epochs = {run["run_id"]: run["epochs"] for run in sqlite_app.get(f"/api/studies/{study['id']}/metrics").json()["runs"]}
    assert epochs.get(run_id, []) == []  # the failed try's epochs are redone, not shown as this try's


def test_layers_of_an_epoch_to_come_are_empty_and_past_the_plan_a_404(sqlite_app):
    study = sqlite_app.post("/api/studies", json=STUDY).json()
    run = study["runs"][0]
    to_come = sqlite_app.get(f"/api/runs/{run['id']}/layers?epoch={run['epochs']}")  # the live page polls these
    assert to_come.status_code == 200 and to_come.json()["layers"] == []
    never = sqlite_app.get(f"/api/runs/{run['id']}/layers?epoch={run['epochs'] + 1}")
    assert never.status_code == 404 and f"trains {run['epochs']} epochs" in never.json()["detail"]


CLIPPED = {"id": "custom",
           "params": {"distribution": "truncated_normal", "mode": "fan_in", "scale": 1, "clip_sigma": 2}}


@pytest.mark.parametrize(("params", "field", "rule"), [
    ({"distribution": "cauchy"}, "initializers.0.params.distribution", "must be one of normal, truncated_normal"),
    ({"mode": "fan_max"}, "initializers.0.params.mode", "must be one of fan_in, fan_out, fan_avg, none"),
    ({"scale": -1}, "initializers.0.params.scale", "must be positive"),
    ({"scale": "big"}, "initializers.0.params.scale", "must be a number"),
    ({"clip_sigma": 0}, "initializers.0.params.clip_sigma", "must be positive"),
    ({"clip_sigma": -2}, "initializers.0.params.clip_sigma", "must be positive"),
    ({"distribution": "normal", "clip_sigma": 2}, "initializers.0.params.clip_sigma", "only when distribution is"),
    ({"program": "import os"}, "initializers.0", "no parameter(s) program"),
])
def test_a_bad_custom_initializer_is_a_422_naming_its_parameter(sqlite_app, params, field, rule):
    response = sqlite_app.post("/api/studies", json={**STUDY, "initializers": [{"id": "custom", "params": params}]})
    assert response.status_code == 422
    details = response.json()["detail"]
    assert any(item["field"] == field and rule in item["msg"] for item in details), details
    assert sqlite_app.get("/api/studies").json() == []


def test_lsuv_is_a_kernel_scheme_only(sqlite_app):
    response = sqlite_app.post("/api/studies", json={**STUDY, "bias_initializer": "lsuv"})
    assert response.status_code == 422
    assert any(item["field"] == "bias_initializer" for item in response.json()["detail"])


def test_lsuv_and_custom_studies_are_accepted_trained_and_listed(sqlite_app, data_dir, monkeypatch):
    from app.settings import get_settings
    from worker.execution import execute_group

    monkeypatch.setenv("INITLAB_DATA_DIR", str(data_dir))  # the in-process worker reads the real data
    get_settings.cache_clear()

    body = {**STUDY, "initializers": ["he_normal", "uniform_fan_in", "lsuv", CLIPPED,
                                      {"id": "custom", "params": {"distribution": "uniform", "mode": "fan_avg"}}],
            "seeds": [0], "training": {"epochs": 1}, "model": {"hidden_units": [16]}}
    response = sqlite_app.post("/api/studies", json=body)
    assert response.status_code == 201, response.text
    study = response.json()
    listed = [(run["initializer"], run["initializer_params"]) for run in study["runs"]]
    assert listed == [("he_normal", {}), ("uniform_fan_in", {}), ("lsuv", {}),
                      ("custom", {"distribution": "truncated_normal", "mode": "fan_in", "scale": 1.0,
                                  "clip_sigma": 2.0}),
                      ("custom", {"distribution": "uniform", "mode": "fan_avg"})]
    # The same spec twice is refused, two different custom specs are two choices (above).
    twice = sqlite_app.post("/api/studies", json={**body, "initializers": [CLIPPED, CLIPPED]})
    assert twice.status_code == 422 and "listed once" in twice.text
    # A worker trains them (in-process: one fused group) from the stored spec.
    outcomes = execute_group([run["id"] for run in study["runs"]])
    assert set(outcomes.values()) == {"succeeded"}, outcomes
    runs = sqlite_app.get(f"/api/studies/{study['id']}").json()["runs"]
    assert [run["status"] for run in runs] == ["succeeded"] * 5
    assert runs[3]["initializer_params"]["distribution"] == "truncated_normal"
    layers = sqlite_app.get(f"/api/runs/{runs[2]['id']}/layers?epoch=0").json()["layers"]
    assert [layer["layer"] for layer in layers] == ["dense_0", "output"]


def test_catalog_offers_lsuv_and_custom_with_their_rules(sqlite_app):
    catalog = {item["id"]: item for item in sqlite_app.get("/api/initializers").json()}
    assert catalog["lsuv"]["kernel_only"] is True and catalog["lsuv"]["needs_data"] is True
    rules = catalog["custom"]["rules"]
    assert rules["mode"]["enum"] == ["fan_in", "fan_out", "fan_avg", "none"]
    assert rules["scale"]["exclusiveMinimum"] == 0
    assert rules["clip_sigma"]["only_with"] == {"distribution": ["truncated_normal"]}


def test_a_grid_study_has_one_run_per_activation_depth_initializer_and_seed(sqlite_app):
    body = {"initializers": ["he_normal", "glorot_uniform"], "seeds": [0, 1], "activations": ["relu", "tanh"],
            "depths": [1, 3], "model": {"hidden_units": [16, 8]}, "dataset": {"name": "mnist"}}
    response = sqlite_app.post("/api/studies", json=body)
    assert response.status_code == 201, response.text
    runs = response.json()["runs"]
    assert len(runs) == 16
    assert {(run["activation"], run["depth"]) for run in runs} == {("relu", 1), ("relu", 3), ("tanh", 1), ("tanh", 3)}
    plain = sqlite_app.post("/api/studies", json={"initializers": ["he_normal"]}).json()["runs"]
    assert (plain[0]["activation"], plain[0]["depth"]) == (None, None)


@pytest.mark.parametrize("change, field, words", [
    ({"depths": [1, 101]}, "depths", "at most 100 hidden layers"),
    ({"depths": [2, 2]}, "depths", "distinct"),
    ({"depths": [0]}, "depths.0", "greater than or equal to 1"),
    ({"activations": ["relu", "relu"]}, "activations", "distinct"),
    ({"activations": ["swish"]}, "activations.0", "Input should be"),
    ({"activations": []}, "activations", "at least 1"),
    ({"depths": [1, 2], "model": {"hidden_units": [16, 16, 16], "residual": True}}, "depths",
     "depth 1 would have no residual block"),
])
def test_bad_grids_get_a_422_naming_the_field(sqlite_app, change, field, words):
    response = sqlite_app.post("/api/studies", json={"initializers": ["he_normal"], **change})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(item["field"] == field and words in item["msg"] for item in detail), detail


def test_the_run_limit_counts_the_grid(sqlite_app, settings_env):
    settings_env(INITLAB_MAX_RUNS_PER_STUDY="4")
    body = {"initializers": ["he_normal"], "seeds": [0, 1, 2], "activations": ["relu", "tanh"]}  # 6 runs
    response = sqlite_app.post("/api/studies", json=body)
    assert response.status_code == 422 and "6 runs (initializers x seeds x activations x depths)" in response.text
    assert sqlite_app.post("/api/studies", json={**body, "seeds": [0, 1]}).status_code == 201


def test_the_study_list_is_paginated_with_its_total(sqlite_app):
    # 501 studies: the list used to stop at 500 without a word.
    from sqlalchemy import insert

    from app.storage.db import session_scope
    from app.storage.models import Study

    with session_scope() as session:
        session.execute(insert(Study), [{"name": f"bulk {index:03d}" + ("_x%" if index == 7 else ""), "spec": {}}
                                        for index in range(501)])
    first = sqlite_app.get("/api/studies")
    assert first.status_code == 200 and first.headers["x-total-count"] == "501"
    assert len(first.json()) == 500 and first.json()[0]["name"] == "bulk 500"  # newest first, as before
    rest = sqlite_app.get("/api/studies", params={"offset": 500})
    assert [study["name"] for study in rest.json()] == ["bulk 000"] and rest.headers["x-total-count"] == "501"
    page = sqlite_app.get("/api/studies", params={"limit": 2, "offset": 1})
    assert [study["name"] for study in page.json()] == ["bulk 499", "bulk 498"]
    # The filter is a literal substring (its % and _ are no wildcards), and the total counts its matches.
    filtered = sqlite_app.get("/api/studies", params={"name": "_X%"})
    assert [study["name"] for study in filtered.json()] == ["bulk 007_x%"] and filtered.headers["x-total-count"] == "1"
    assert sqlite_app.get("/api/studies", params={"name": "bulk 00"}).headers["x-total-count"] == "10"
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        assert sqlite_app.get("/api/studies", params=bad).status_code == 422, bad


def test_cancel_says_it_is_pending_and_refuses_a_finished_run(sqlite_app):
    study = sqlite_app.post("/api/studies", json=STUDY).json()
    queued, running = study["runs"][0]["id"], study["runs"][1]["id"]
    assert run_store.claim_run(running, "host-a") is not None
    answer = sqlite_app.post(f"/api/runs/{running}/cancel")
    assert answer.status_code == 200
    assert answer.json()["status"] == "running" and answer.json()["cancel_requested"] is True
    assert sqlite_app.get(f"/api/runs/{running}").json()["cancel_requested"] is True
    assert sqlite_app.post(f"/api/runs/{queued}/cancel").json()["status"] == "cancelled"
    refused = sqlite_app.post(f"/api/runs/{queued}/cancel")
    assert refused.status_code == 409 and "cancelled" in refused.json()["detail"]
    assert run_store.finish_run(running, "succeeded", owner="host-a")
    finished = sqlite_app.post(f"/api/runs/{running}/cancel")
    assert finished.status_code == 409 and "succeeded" in finished.json()["detail"]
    assert sqlite_app.get(f"/api/runs/{running}").json()["cancel_requested"] is False


@pytest.mark.parametrize(("patch", "field"), [({"training": {"learning_rate": math.nan}}, "training.learning_rate"),
                                              ({"model": {"dropout": math.inf}}, "model.dropout")])
def test_nan_and_infinity_are_a_422_saying_finite(sqlite_app, patch, field):
    import json

    body = json.dumps({**STUDY, **patch})  # NaN / Infinity literals, as Python's json and JavaScript's eval write them
    response = sqlite_app.post("/api/studies", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert any(item["field"] == field and "finite number" in item["msg"] for item in response.json()["detail"])


def test_delete_a_study_once_nothing_of_it_runs(sqlite_app):
    study = sqlite_app.post("/api/studies", json=STUDY).json()
    run_id = study["runs"][0]["id"]
    assert "DELETE" in sqlite_app.options(f"/api/studies/{study['id']}").headers["allow"]
    busy = sqlite_app.delete(f"/api/studies/{study['id']}")
    assert busy.status_code == 409 and "cancel it first" in busy.json()["detail"]
    sqlite_app.post(f"/api/studies/{study['id']}/cancel")  # every run was queued: all cancelled at once
    assert sqlite_app.delete(f"/api/studies/{study['id']}").status_code == 204
    assert sqlite_app.get(f"/api/studies/{study['id']}").status_code == 404
    assert sqlite_app.get(f"/api/runs/{run_id}").status_code == 404
    assert sqlite_app.delete(f"/api/studies/{study['id']}").status_code == 404
    assert sqlite_app.get("/api/studies").json() == []


def test_a_mistyped_page_address_gets_the_not_found_page_and_api_clients_json(sqlite_app):
    html = {"Accept": "text/html,application/xhtml+xml"}
    for path in ("/nope", "/studies/", "/diagnostics"):
        page = sqlite_app.get(path, headers=html)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), path
        assert "Not found" in page.text and f"There is no page at {path}." in page.text
    assert sqlite_app.get("/nope").json() == {"detail": "Not Found"}  # curl and scripts keep JSON
    assert sqlite_app.get("/api/nope", headers=html).headers["content-type"] == "application/json"
