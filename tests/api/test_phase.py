"""GET /api/studies/{id}/phase and GET /api/theory/mean-field: a real (tiny) weight-variance sweep,
trained by the training core in-process, read through the API."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

SWEEP = {"name": "sweep", "dataset": {"name": "mnist", "train_samples": 300, "validation_samples": 100},
         "model": {"hidden_units": [16], "activation": "tanh"},
         "training": {"optimizer": "sgd", "learning_rate": 0.01, "batch_size": 50, "epochs": 1},
         "weight_variances": [0.5, 4.0], "bias_variances": [0.05], "depths": [2, 6], "seeds": [0]}


@pytest.fixture
def trained(sqlite_app, settings_env, data_dir):
    from worker.execution import execute_group

    settings_env(INITLAB_DATA_DIR=str(data_dir))
    study = sqlite_app.post("/api/studies", json=SWEEP).json()
    assert [(r["weight_variance"], r["bias_variance"], r["depth"]) for r in study["runs"]] == [
        (0.5, 0.05, 2), (4.0, 0.05, 2), (0.5, 0.05, 6), (4.0, 0.05, 6)]
    assert execute_group([run["id"] for run in study["runs"]]) == {run["id"]: "succeeded" for run in study["runs"]}
    return sqlite_app, study


def test_the_phase_view_has_every_cell_the_theory_and_the_correlations(trained):
    client, study = trained
    response = client.get(f"/api/studies/{study['id']}/phase")
    assert response.status_code == 200
    json.loads(response.text, parse_constant=lambda token: pytest.fail(f"bare {token} in the JSON"))
    view = response.json()
    assert (view["weight_variances"], view["bias_variances"], view["depths"]) == ([0.5, 4.0], [0.05], [2, 6])
    assert [(c["weight_variance"], c["depth"], c["n"]) for c in view["cells"]] == [(0.5, 2, 1), (4.0, 2, 1),
                                                                                  (0.5, 6, 1), (4.0, 6, 1)]
    assert all(0 <= c["mean"] <= 1 for c in view["cells"])
    (theory,) = view["theory"]
    assert theory["activation"] == "tanh" and theory["critical_weight_variance"] == pytest.approx(1.761, abs=1e-3)
    deep = [c for c in view["correlations"] if c["depth"] == 6]
    ordered, chaotic = sorted(deep, key=lambda c: c["weight_variance"])
    assert ordered["layers"] == list(range(1, 7)) and len(ordered["measured_c"]) == 6
    # Measured at init: the ordered network pulls two inputs together, the chaotic one pulls them apart,
    # as the correlation map predicts from the same first layer.
    assert ordered["measured_c"][-1] > ordered["measured_c"][0] and chaotic["measured_c"][-1] < chaotic["measured_c"][0]
    assert ordered["predicted"]["c"][0] == pytest.approx(ordered["measured_c"][0])
    assert abs(ordered["predicted"]["c"][-1] - ordered["measured_c"][-1]) < 0.15
    (edge,) = view["edges"]  # the measured trainable region, from the same cells
    best = max(c["mean"] for c in view["cells"])
    assert edge["threshold"] == pytest.approx(0.1 + 0.5 * (best - 0.1)) and edge["weight_variance"] == [0.5, 4.0]
    # Six SGD steps at 0.01 leave every cell at chance (about 10 %), so nothing trained: no
    # measured σ_w*, although halfway from chance to the best cell would have picked one from noise.
    assert best < 0.2 and (edge["best"], edge["trained"]) == (pytest.approx(best), False)
    assert edge["trainable_depth"] == [None, None] and edge["critical_weight_variance"] is None
    val = client.get(f"/api/studies/{study['id']}/phase?metric=val_accuracy").json()
    assert val["metric"] == "val_accuracy" and len(val["edges"]) == 1
    assert client.get(f"/api/studies/{study['id']}/phase?metric=loss").json()["edges"] == []


def test_the_study_page_and_the_phase_page_show_it(trained):
    client, study = trained
    assert 'id="phase-section"' in client.get(f"/studies/{study['id']}").text
    page = client.get(f"/studies/{study['id']}/phase")
    assert page.status_code == 200 and "/static/phase_page.js" in page.text


def test_a_study_without_a_sweep_has_no_phase_diagram(sqlite_app):
    study = sqlite_app.post("/api/studies", json={"initializers": ["he_normal"], "training": {"epochs": 1}}).json()
    assert sqlite_app.get(f"/api/studies/{study['id']}/phase").status_code == 404
    assert sqlite_app.get(f"/studies/{study['id']}/phase").status_code == 404
    assert 'id="phase-section"' not in sqlite_app.get(f"/studies/{study['id']}").text
    assert sqlite_app.get("/api/studies/999/phase").status_code == 404


def test_the_depth_axis_counts_hidden_layers_with_or_without_a_depths_grid(sqlite_app):
    """Cells, correlations and the axis share one depth, the networks' hidden layers (QA pass: a sweep without a
    depths grid had cells at depth null on an axis at 2, so the page drew no cell)."""
    plain = {**SWEEP, "model": {"hidden_units": [16, 16], "activation": "tanh"}}
    del plain["depths"]
    study = sqlite_app.post("/api/studies", json=plain).json()
    view = sqlite_app.get(f"/api/studies/{study['id']}/phase").json()
    assert view["depths"] == [2] and {cell["depth"] for cell in view["cells"]} == {2}
    assert view["theory_caveat"] is None
    residual = {**SWEEP, "model": {"hidden_units": [16, 16, 16], "activation": "tanh", "residual": True,
                                   "normalization": "batchnorm"}, "depths": [2, 3]}
    study = sqlite_app.post("/api/studies", json=residual).json()
    view = sqlite_app.get(f"/api/studies/{study['id']}/phase").json()
    assert view["depths"] == [3, 5] and sorted({cell["depth"] for cell in view["cells"]}) == [3, 5]
    assert "BatchNorm and residual blocks" in view["theory_caveat"] and "reference, not a prediction" in view[
        "theory_caveat"]
    summary = sqlite_app.get(f"/api/studies/{study['id']}/summary").json()
    assert [(group["cell"], group["depth"], group["hidden_layers"]) for group in summary["groups"][::2]] == [
        ("2 blocks · σ_b² 0.05", 2, 3), ("3 blocks · σ_b² 0.05", 3, 5)]


def test_mean_field_theory_alone(sqlite_app):
    relu = sqlite_app.get("/api/theory/mean-field?activation=relu&bias_variance=0").json()
    assert relu["critical_weight_variance"] == pytest.approx(2.0)
    tanh = sqlite_app.get("/api/theory/mean-field?activation=tanh&bias_variance=0.05&weight_variance_max=4&points=8")
    points = tanh.json()["points"]
    assert [p["weight_variance"] for p in points] == [0.5 * i for i in range(1, 9)]
    assert points[0]["c_star"] == 1.0 and points[-1]["c_star"] < 1.0  # ordered, then chaotic
    assert sqlite_app.get("/api/theory/mean-field?activation=relu&bias_variance=0.1").json()[
        "critical_weight_variance"] is None  # ReLU with bias noise has no edge
    assert sqlite_app.get("/api/theory/mean-field?activation=swish").status_code == 422


def test_sweep_requests_are_checked(sqlite_app):
    both = sqlite_app.post("/api/studies", json={**SWEEP, "initializers": ["he_normal"]})
    assert both.status_code == 422 and both.json()["detail"][0]["field"] == "initializers"
    stray = sqlite_app.post("/api/studies", json={"initializers": ["he_normal"], "bias_variances": [0.1]})
    assert stray.status_code == 422 and stray.json()["detail"][0]["field"] == "bias_variances"
    negative = sqlite_app.post("/api/studies", json={**SWEEP, "weight_variances": [-1.0]})
    assert negative.status_code == 422 and negative.json()["detail"][0]["field"] == "weight_variances.0"
