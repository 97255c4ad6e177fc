"""The study page's read endpoints on a real (migrated) SQLite database, in-process.

A study is written straight through the storage layer, as a worker would write it, with
the worker's own tensor summaries; the answers are checked against what was written.
"""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest

from app.storage import runs as run_store
from support.factories import LAYERS, layer_rows, write_study

@pytest.fixture
def app_with_study(sqlite_app):
    return sqlite_app, write_study()


def test_summary_groups_verdict_and_curves(app_with_study):
    client, study_id = app_with_study
    view = client.get(f"/api/studies/{study_id}/summary").json()
    assert [g["key"] for g in view["groups"]] == ["he_normal", "random_normal(stddev=0.01)"]
    he, small = view["groups"]
    assert he["label"] == "He normal" and small["label"] == "Random normal (stddev=0.01)" and "fan_in" in he["formula"]
    assert he["seeds"] == [0, 1] and len(he["run_ids"]) == 2
    assert he["table"]["final_val_accuracy"]["mean"] == pytest.approx(0.8 + 0.09 + 0.005 - 0.02)
    assert he["table"]["final_val_accuracy"]["std"] == pytest.approx(0.005 * np.sqrt(2))  # sample std (ddof=1) of two values 0.01 apart
    assert he["table"]["best_epoch"]["mean"] == 3 and he["table"]["seconds_per_epoch"]["mean"] == 2.0
    assert he["table"]["leader"] and not small["table"]["leader"]
    assert small["table"]["diverged"] == 1 and small["table"]["final_val_loss"]["n"] == 1
    assert small["table"]["best_val_accuracy"]["mean"] == pytest.approx(np.mean([0.5 + 0.09 - 0.02, 0.5 + 0.06 + 0.01 - 0.02]))
    curves = he["curves"]
    assert curves["epochs"] == [1, 2, 3] and curves["val_accuracy"]["n"] == [2, 2, 2]
    assert curves["loss"]["mean"] == pytest.approx([1.0, 0.5, 1 / 3])
    # The diverged run's NaN / Infinity stay in its own series, as strings, and out of the band.
    assert small["curves"]["val_loss"]["n"][-1] == 1
    diverged = next(r for r in view["runs"] if r["group"] == small["key"] and r["seed"] == 1)
    assert diverged["diverged"] and diverged["loss"][-1] == "NaN" and diverged["val_loss"][-1] == "Infinity"
    assert view["planned_epochs"] == 3 and view["status"] == "failed" and not view["downsampled"]

    thin = client.get(f"/api/studies/{study_id}/summary?max_points=2&runs=false").json()
    assert thin["runs"] is None and thin["downsampled"] and thin["groups"][0]["curves"]["epochs"] == [1, 3]
    assert client.get("/api/studies/999/summary").status_code == 404
    assert client.get(f"/api/studies/{study_id}/summary?max_points=1").status_code == 422


def test_gradient_norms_per_layer_keep_exact_zeros(app_with_study):
    client, study_id = app_with_study
    view = client.get(f"/api/studies/{study_id}/gradients").json()
    assert [layer["layer"] for layer in view["layers"]] == ["dense_0", "output"] and view["epochs"] == [0, 1, 2, 3]
    he, small = view["groups"]
    assert len(he["layers"]["dense_0"]["mean"]) == 4 and all(v > 0 for v in he["layers"]["dense_0"]["mean"])
    assert small["layers"]["dense_0"]["mean"] == [0.0, 0.0, 0.0, 0.0], "a vanished gradient is an exact 0, not a gap"


def test_histograms_share_edges_across_runs_and_epochs(app_with_study):
    client, study_id = app_with_study
    at = {epoch: client.get(f"/api/studies/{study_id}/histograms?epoch={epoch}").json() for epoch in (0, 2, 3)}
    assert at[0]["epochs"] == [0, 1, 2, 3]
    for epoch, view in at.items():
        assert [layer["layer"] for layer in view["layers"]] == ["dense_0", "output"]
        for layer in view["layers"]:
            assert layer["edges"] == at[0]["layers"][layer["index"]]["edges"], "one set of edges per layer"
            assert len(layer["edges"]) == 65 and len(layer["runs"]) == 4
            for run in layer["runs"]:
                assert sum(run["counts"]) + run["below"] + run["above"] == pytest.approx(run["total"], abs=0.5)
                assert run["total"] + run["nonfinite"] == np.prod(dict(LAYERS)[layer["layer"]])
        assert not view["approximate"]
    # The edges span every run and epoch of the layer: the widest tensor is He's at the last epoch.
    edges = at[0]["layers"][0]["edges"]
    widest = next(r for r in at[3]["layers"][0]["runs"] if r["counts"][0] > 0 or r["counts"][-1] > 0)
    assert widest["run_id"] in (1, 2) and edges[0] < 0 < edges[-1]
    # random_normal's kernels are all zeros here: a point mass in the bin holding 0.
    zeros = next(r for r in at[2]["layers"][0]["runs"] if r["run_id"] == 3)
    assert max(zeros["counts"]) == pytest.approx(784 * 16)
    # The diverged run's NaN and Inf are counted apart; its finite values are still drawn.
    diverged = next(r for r in at[3]["layers"][0]["runs"] if r["run_id"] == 4)
    assert diverged["nonfinite"] == 2 and diverged["total"] == 784 * 16 - 2
    assert sum(diverged["counts"]) == pytest.approx(784 * 16 - 2, abs=0.5)

    old = client.get(f"/api/studies/{study_id}/histograms?epoch=1").json()
    assert old["approximate"] and all(run["approximate"] for run in old["layers"][0]["runs"])
    robust = client.get(f"/api/studies/{study_id}/histograms?epoch=3&range=robust&bins=32").json()
    narrow = robust["layers"][0]["edges"]
    assert len(narrow) == 33 and edges[0] <= narrow[0] and narrow[-1] <= edges[-1]
    gradients = client.get(f"/api/studies/{study_id}/histograms?epoch=3&kind=gradient").json()
    assert gradients["kind"] == "gradient" and len(gradients["layers"]) == 2
    assert client.get(f"/api/studies/{study_id}/histograms?epoch=3&kind=activations").status_code == 422
    assert client.get("/api/studies/999/histograms?epoch=0").status_code == 404


def test_one_run_over_epochs_heatmap_and_percentiles(app_with_study):
    client, study_id = app_with_study
    shared = client.get(f"/api/studies/{study_id}/histograms?epoch=0").json()["layers"][0]["edges"]
    heat = client.get("/api/runs/1/histograms?layer=dense_0").json()
    assert heat["epochs"] == [0, 1, 2, 3] and heat["edges"] == shared
    assert len(heat["counts"]) == 4 and all(len(row) == 64 for row in heat["counts"]) and heat["approximate"]
    bands = client.get("/api/runs/1/percentiles?layer=dense_0&kind=kernel").json()
    assert bands["fractions"] == [0.0, 0.0668, 0.1587, 0.3085, 0.5, 0.6915, 0.8413, 0.9332, 1.0]
    assert bands["epochs"] == [0, 1, 2, 3] and len(bands["values"]) == 4
    for row in bands["values"]:
        assert row == sorted(row) and row[0] < 0 < row[-1]
    spread = [row[7] - row[1] for row in bands["values"]]
    assert spread[-1] > spread[0], "He's kernel widens with training in this fixture"
    assert client.get("/api/runs/999/percentiles?layer=dense_0").status_code == 404
    assert client.get("/api/runs/1/histograms?layer=nope").status_code == 404
    assert client.get("/api/runs/1/percentiles?layer=nope").status_code == 404  # as the histograms say


def test_compare_two_studies(app_with_study):
    client, first = app_with_study
    second = write_study("second", epochs=2, old_rows_epoch=None)
    view = client.get(f"/api/compare?ids={first},{second}").json()
    assert [s["study_id"] for s in view["studies"]] == [first, second]
    assert all(s["runs"] is None for s in view["studies"]) and view["studies"][1]["planned_epochs"] == 2
    assert client.get(f"/api/compare?ids={first},999").status_code == 404
    assert client.get("/api/compare?ids=1;2").status_code == 422


def test_limits_are_the_apis_own(sqlite_app, monkeypatch):
    from app.settings import get_settings

    monkeypatch.setenv("INITLAB_MAX_EPOCHS", "7")
    get_settings.cache_clear()
    limits = sqlite_app.get("/api/limits").json()
    assert limits["settings"]["max_epochs"] == 7
    assert limits["fields"]["training.epochs"] == {"minimum": 1, "maximum": 7, "type": "integer"}
    assert limits["fields"]["model.dropout"]["exclusiveMaximum"] == 1.0
    assert limits["fields"]["dataset.train_samples"]["nullable"] is True
    assert limits["fields"]["seeds"]["maxItems"] == limits["settings"]["max_seeds"] == 64  # INITLAB_MAX_SEEDS default
    body = {"initializers": ["he_normal"], "training": {"epochs": 8}}
    assert sqlite_app.post("/api/studies", json=body).status_code == 422
    body["training"]["epochs"] = 7
    assert sqlite_app.post("/api/studies", json=body).status_code == 201


def test_presets_are_studies_the_api_accepts(sqlite_app):
    from app.schemas.studies import StudyCreate

    presets = sqlite_app.get("/api/presets").json()
    assert [p["id"] for p in presets] == ["seed-001", "seed-000", "activation-grid", "deep-10", "edge-of-chaos",
                                          "cnn-fashion", "batchnorm-rescue", "deep-residual"]
    for preset in presets:
        # A linked preset stands for one study per variant, as the form sends them.
        bodies = [{**preset["study"], "name": f"{preset['study']['name']} — {variant['label']}",
                   "model": {**preset["study"]["model"], **variant["model"]}} for variant in preset["variants"]]
        for body in bodies or [preset["study"]]:
            StudyCreate.model_validate(body)
            # ... and the API itself takes each one (its limits included), as the form would send it.
            response = sqlite_app.post("/api/studies", json=body)
            assert response.status_code == 201, (preset["id"], response.text)
    rescue, residual = presets[6], presets[7]
    assert [v["model"] for v in rescue["variants"]] == [{"normalization": "none"}, {"normalization": "batchnorm"}]
    assert rescue["study"]["initializers"] == ["uniform_0_1", "uniform_fan_in", "glorot_uniform", "he_normal"]
    assert [v["model"] for v in residual["variants"]] == [{"zero_init_residual": False}, {"zero_init_residual": True}]
    assert residual["study"]["model"]["residual"] is True
    grid = presets[2]["study"]  # seed 001's table: Glorot vs He under each activation it names
    assert grid["activations"] == ["relu", "leaky_relu", "tanh", "sigmoid", "linear"]
    assert len(presets[3]["study"]["model"]["hidden_units"]) == 10
    cnn = presets[5]["study"]["model"]  # issue 12's CNN comparison
    assert (cnn["family"], cnn["conv_channels"], cnn["pooling"]) == ("cnn", [16, 32], "max")


def _events(response) -> list[tuple[str, dict]]:
    found, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            found.append((name, json.loads(line[6:])))
            if name == "end":
                break
    return found


def test_events_of_a_finished_study_end_at_once(app_with_study):
    client, study_id = app_with_study
    with client.stream("GET", f"/api/studies/{study_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
    assert [name for name, _ in events] == ["progress", "end"]
    progress = events[0][1]
    assert progress["status"] == "failed" and len(progress["runs"]) == 4
    assert sorted(run["status"] for run in progress["runs"]) == ["failed", "succeeded", "succeeded", "succeeded"]
    assert all(run["fraction"] == 1.0 for run in progress["runs"] if run["status"] == "succeeded")
    assert client.get("/api/studies/999/events").status_code == 404


def test_events_follow_a_training_run_until_the_study_ends(sqlite_app):
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    study = studies.create_study(StudyCreate(name="live", initializers=["he_normal"], seeds=[0], training={"epochs": 2}))[0]
    run_id = study.runs[0].id
    run_store.claim_run(run_id)

    def worker():
        time.sleep(1.2)
        run_store.heartbeat(run_id, batch=5, batches=10)
        time.sleep(1.2)
        records.record_epoch(run_id, 1, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5, "seconds": 1.0})
        time.sleep(1.2)
        run_store.finish_run(run_id, "succeeded")

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        with sqlite_app.stream("GET", f"/api/studies/{study.id}/events") as response:
            events = _events(response)
    finally:
        thread.join()
    names = [name for name, _ in events]
    assert names[-1] == "end" and names.count("progress") >= 3
    runs = [payload["runs"][0] for name, payload in events if name == "progress"]
    assert runs[0]["status"] == "running" and runs[-1]["status"] == "succeeded"
    halfway = next(run for run in runs if run["batch"] == 5)
    assert halfway["fraction"] == pytest.approx(0.25) and halfway["started_at"].endswith("+00:00")
    versions = {payload["data_version"] for name, payload in events if name == "progress"}
    assert len(versions) >= 2, "a new epoch changes the data version"


SEED_EFFECT = {0: 0.0, 1: 0.06, 2: 0.03, 3: 0.09}
HE_UNIFORM_NOISE = {0: 0.01, 1: -0.01, 2: 0.02, 3: -0.02}
GLOROT_GAIN = {0: 0.02, 1: 0.025, 2: 0.015, 3: 0.02}


def write_paired_study() -> int:
    """ReLU; seeds 0-3 with their own effect on accuracy (up to 9 points). Per seed and epoch:
    he_normal 0.70 + 0.05 epoch + seed effect; glorot_uniform 2 +- 0.5 points above it on every seed;
    he_uniform +1, -1, +2, -2 points (mean 0); zeros at chance, seed 2 still running after
    epoch 1, seed 3 diverged (NaN) at epoch 2."""
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    study = studies.create_study(StudyCreate(
        name="paired", model={"hidden_units": [16], "activation": "relu"}, training={"epochs": 3},
        initializers=["zeros", "he_normal", "glorot_uniform", "he_uniform"], seeds=[0, 1, 2, 3]))[0]
    for run in study.runs:
        run_store.claim_run(run.id, worker_host="test")
        offset = {"he_normal": 0.0, "glorot_uniform": GLOROT_GAIN[run.seed], "he_uniform": HE_UNIFORM_NOISE[run.seed]}.get(run.initializer)
        for epoch in (1, 2, 3):
            accuracy = 0.1 + 0.01 * (run.seed == 1) if offset is None else 0.70 + 0.05 * epoch + SEED_EFFECT[run.seed] + offset
            metrics = {"loss": 1.0 / epoch, "accuracy": accuracy, "val_loss": 1.0 / epoch, "val_accuracy": accuracy, "seconds": 1.0}
            if run.initializer == "zeros" and run.seed == 3 and epoch == 2:
                metrics.update(loss=math.nan, val_loss=math.nan, val_accuracy=math.nan)
            records.record_epoch(run.id, epoch, metrics)
            if run.initializer == "zeros" and run.seed in (2, 3) and epoch == run.seed - 1:
                break
        if run.initializer == "zeros" and run.seed == 3:
            run_store.finish_run(run.id, "diverged", diverged_epoch=2)
        elif not (run.initializer == "zeros" and run.seed == 2):
            run_store.finish_run(run.id, "succeeded")
    return study.id


def test_summary_statistics_pair_seeds_against_a_baseline(sqlite_app):
    from scipy.stats import ttest_1samp

    study_id = write_paired_study()
    view = sqlite_app.get(f"/api/studies/{study_id}/summary?runs=false").json()
    info = view["statistics"]
    assert info["baseline"] == "he_normal" and info["default_baseline"] == "he_normal" and info["threshold"] == 90
    assert info["ranking"] == ["glorot_uniform", "he_normal", "he_uniform", "zeros"]
    stats = {g["key"]: g["stats"] for g in view["groups"]}
    assert view["groups"][1]["table"]["final_val_accuracy"]["n"] == 4, "the verdict table is still there"

    he, glorot, uniform, zeros = (stats[k] for k in ("he_normal", "glorot_uniform", "he_uniform", "zeros"))
    finals = [0.85 + SEED_EFFECT[seed] for seed in range(4)]
    assert he["final_val_accuracy"]["mean"] == pytest.approx(np.mean(finals))
    assert he["final_val_accuracy"]["std"] == pytest.approx(np.std(finals, ddof=1))
    interval = ttest_1samp(finals, 0.0).confidence_interval(0.95)  # the t interval of the mean
    assert (he["final_val_accuracy"]["ci_low"], he["final_val_accuracy"]["ci_high"]) == pytest.approx((interval.low, interval.high))
    assert info["method"].startswith("Paired Student-t test") and "tiers" in info["ranking_rule"]
    # Seeds spread he_normal over 9 points, yet glorot_uniform's 2 +- 0.5-point gain on every seed is distinguishable.
    gain = glorot["difference"]["final_val_accuracy"]
    reference = ttest_1samp(list(GLOROT_GAIN.values()), 0.0)
    assert gain["mean"] == pytest.approx(0.02) and gain["p_value"] == pytest.approx(reference.pvalue, rel=1e-4)
    assert gain["ci_low"] > 0 and gain["verdict"] == "higher" and gain["test"] == "paired t"
    assert gain["seeds"] == [0, 1, 2, 3] and gain["distinguishable"] is True
    # Sized for the Holm-adjusted verdict over the cell's 3 comparisons: 4 seeds (3 for one test alone).
    assert gain["comparisons"] == 3 and gain["seeds_needed"] == 4
    noise = uniform["difference"]["final_val_accuracy"]
    assert noise["mean"] == pytest.approx(0.0, abs=1e-9) and noise["ci_low"] < 0 < noise["ci_high"]
    assert noise["verdict"] == "not distinguishable" and noise["distinguishable"] is False
    assert noise["seeds_needed"] is None, "no difference to find"
    assert he["difference"]["final_val_accuracy"]["verdict"] == "baseline"
    assert he["difference"]["final_val_accuracy"]["p_value"] is None
    # Tiers are on the seeds every ranked initializer has finished: zeros' seed 2 still runs and its seed 3 is NaN,
    # so seeds 0 and 1; at 2 seeds no pair survives Holm over the 6 pairs (t(1)), so all share rank 1, and the
    # cell says which finished runs the ranks leave out. The verdicts against he_normal keep their own seeds.
    assert (glorot["rank"], he["rank"], uniform["rank"], zeros["rank"]) == (1, 1, 1, 1)
    cell = info["cells"][0]
    assert cell["ranking_seeds"] == [0, 1] and "6 other finished runs left out of the ranks" in cell["ranking_note"]
    assert glorot["rank_mean"] == pytest.approx(np.mean([0.85 + SEED_EFFECT[s] + GLOROT_GAIN[s] for s in (0, 1)]))
    assert sorted(glorot["tied_with"]) == ["he_normal", "he_uniform", "zeros"] and glorot["differs_from"] == []
    assert gain["comparisons"] == 3 and gain["p_adjusted"] < 0.05

    # zeros: the running run waits, the diverged run's NaN final stays out; its best (0.1) counts.
    assert (zeros["runs"], zeros["used"], zeros["active"], zeros["excluded"], zeros["diverged"]) == (4, 3, 1, 0, 1)
    assert zeros["final_val_accuracy"]["n"] == 2 and zeros["final_val_accuracy"]["mean"] == pytest.approx(0.105)
    assert zeros["best_val_accuracy"]["n"] == 3
    lost = zeros["difference"]["final_val_accuracy"]
    assert lost["seeds"] == [0, 1] and lost["mean"] == pytest.approx(np.mean([0.1 - 0.85, 0.11 - 0.91])) and lost["verdict"] == "lower"

    # Epochs to 90 %: he_normal's seeds 1 and 3 at epoch 3; to 80 %: epochs 2, 1, 2, 1.
    reach = he["epochs_to_threshold"]
    assert (reach["runs"], reach["reached"], reach["mean"], reach["min"], reach["max"]) == (4, 2, 3, 3, 3)
    low = sqlite_app.get(f"/api/studies/{study_id}/summary?runs=false&threshold=80").json()
    reach = next(g["stats"]["epochs_to_threshold"] for g in low["groups"] if g["key"] == "he_normal")
    assert [s["epoch"] for s in reach["per_seed"]] == [2, 1, 2, 1] and reach["mean"] == 1.5
    assert low["statistics"]["threshold"] == 80

    again = sqlite_app.get(f"/api/studies/{study_id}/summary?runs=false").json()
    assert again["groups"] == view["groups"], "the same answer every time"


def test_summary_statistics_baseline_choice_and_bad_parameters(sqlite_app):
    study_id = write_paired_study()
    url = f"/api/studies/{study_id}/summary?runs=false&max_points=2"
    chosen = sqlite_app.get(f"{url}&baseline=glorot_uniform").json()
    assert chosen["statistics"]["baseline"] == "glorot_uniform" and chosen["statistics"]["baseline_reason"] == "requested"
    he = next(g["stats"] for g in chosen["groups"] if g["key"] == "he_normal")
    assert he["difference"]["final_val_accuracy"]["mean"] == pytest.approx(-0.02)
    assert he["difference"]["final_val_accuracy"]["verdict"] == "lower"
    uniform = next(g["stats"] for g in chosen["groups"] if g["key"] == "he_uniform")
    assert uniform["difference"]["final_val_accuracy"]["verdict"] == "not distinguishable"
    assert uniform["difference"]["final_val_accuracy"]["p_value"] == pytest.approx(0.1558, abs=1e-3)
    absent = sqlite_app.get(f"{url}&baseline=lecun_normal").json()["statistics"]
    assert absent["baseline"] == "he_normal" and absent["requested_baseline"] == "lecun_normal"
    assert "'lecun_normal' is not in this study" in absent["baseline_reason"]
    for query, rule in (("baseline=he_magic", "unknown initializer 'he_magic'"), ("baseline=he%20normal", "pattern"),
                        ("threshold=0", "greater than 0"), ("threshold=100.5", "less than or equal to 100"),
                        ("threshold=nan", "finite"), ("threshold=high", "valid number")):
        response = sqlite_app.get(f"{url}&{query}")
        assert response.status_code == 422, query
        field = query.split("=")[0]
        assert [(e["field"], rule in e["msg"]) for e in response.json()["detail"]] == [(field, True)], response.text
    assert sqlite_app.get(f"{url}&threshold=100").status_code == 200
    assert sqlite_app.get("/api/studies/999/summary?baseline=he_normal").status_code == 404
    compare = sqlite_app.get(f"/api/compare?ids={study_id}").json()["studies"][0]
    assert compare["statistics"] is None and compare["groups"][0]["stats"] is None


def test_custom_initializers_with_word_params_get_their_own_groups_and_labels(sqlite_app):
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    clipped = {"id": "custom", "params": {"distribution": "truncated_normal", "mode": "fan_in", "scale": 1.0,
                                          "clip_sigma": 2.0}}
    uniform = {"id": "custom", "params": {"distribution": "uniform", "mode": "fan_avg", "scale": 1.0}}
    study = studies.create_study(StudyCreate(
        name="custom", dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        model={"hidden_units": [16]}, training={"epochs": 1}, initializers=[clipped, uniform, "lsuv"], seeds=[0]))[0]
    for run in study.runs:
        run_store.claim_run(run.id, worker_host="test")
        records.record_layers(run.id, 0, layer_rows(np.random.default_rng(run.id), 0.05, 0))
        records.record_epoch(run.id, 1, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5,
                                         "seconds": 1.0})
        run_store.finish_run(run.id, "succeeded")
    view = sqlite_app.get(f"/api/studies/{study.id}/summary").json()
    assert len({group["key"] for group in view["groups"]}) == 3
    labels = [group["label"] for group in view["groups"]]
    assert labels[0].startswith("custom: truncated normal") and "clip 2σ" in labels[0], labels
    assert labels[1].startswith("custom: uniform") and labels[2].startswith("LSUV"), labels
    for path in ("gradients", "failures", "theory", "export?format=json", "export?format=tensorboard"):
        assert sqlite_app.get(f"/api/studies/{study.id}/{path}").status_code == 200, path
    exported = sqlite_app.get(f"/api/studies/{study.id}/export?format=csv").text.splitlines()
    assert any("_clip_sigma=2_distribution=truncated_normal_mode=fan_in_scale=1_seed0" in line for line in exported)
    checks = sqlite_app.get(f"/api/studies/{study.id}/theory").json()["layers"][0]["runs"]
    assert checks[2]["theory"] is None  # LSUV is rescaled on data: nothing closed-form to check against
