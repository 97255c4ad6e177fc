"""A CNN study and a BatchNorm MLP study through POST /api/studies and the worker's own path.

The API runs in-process on a migrated SQLite database; each study is trained by
``worker.execution.execute_group`` (claim, fused training, StorageSink, finish), as a Celery
task would do it, and read back through the API: statuses, curves and per-layer records.
"""

from __future__ import annotations

import pytest
from support.factories import trained_study

pytestmark = pytest.mark.slow

SMALL = {"dataset": {"name": "fashion_mnist", "train_samples": 300, "validation_samples": 200},
         "training": {"epochs": 2, "batch_size": 32, "learning_rate": 0.01}, "seeds": [0]}


def layers(client, run_id: int, epoch: int) -> dict[str, dict]:
    response = client.get(f"/api/runs/{run_id}/layers?epoch={epoch}")
    assert response.status_code == 200, response.text
    return {layer["layer"]: layer for layer in response.json()["layers"]}


def test_a_cnn_study_trains_and_records_its_conv_layers(client):
    study = trained_study(client, SMALL, name="cnn", initializers=["he_normal", "glorot_uniform", "delta_orthogonal"],
                          model={"family": "cnn", "conv_channels": [4, 8], "hidden_units": [16]})
    assert [run["status"] for run in study["runs"]] == ["succeeded"] * 3
    assert study["spec"]["model"]["family"] == "cnn" and study["spec"]["model"]["pooling"] == "max"
    for run in study["runs"]:
        for epoch in (0, 2):
            found = layers(client, run["id"], epoch)
            assert list(found) == ["conv_0", "conv_1", "dense_0", "output"]
            conv = found["conv_1"]
            assert sum(conv["kernel"]["counts"]) == 3 * 3 * 4 * 8 and sum(conv["bias"]["counts"]) == 8
            assert conv["gradient"]["norm"] > 0
    # He normal's conv_1 kernel at init: σ = sqrt(2 / (3·3·4)) (Keras's conv fan_in), truncated at 2σ.
    he = next(run for run in study["runs"] if run["initializer"] == "he_normal")
    assert layers(client, he["id"], 0)["conv_1"]["kernel"]["std"] == pytest.approx((2 / 36) ** 0.5, rel=0.25)
    metrics = client.get(f"/api/studies/{study['id']}/metrics")
    assert metrics.status_code == 200, metrics.text
    theory = client.get(f"/api/studies/{study['id']}/theory").json()
    conv_1 = next(layer for layer in theory["layers"] if layer["layer"] == "conv_1")
    assert (conv_1["fan_in"], conv_1["fan_out"]) == (36, 72)
    # Every run's conv kernel checked against its closed form, delta-orthogonal's atom at 0 included.
    assert [row["mismatch"] for row in conv_1["runs"]] == [False, False, False], conv_1["runs"]
    # Every view of the study page answers for a CNN (no view assumes 2-D kernels).
    for path in ("summary", "gradients", "histograms?epoch=2", "histograms?epoch=0&kind=gradient", "failures", "theory?kind=bias", "export?format=csv",
                 "export?format=json"):
        response = client.get(f"/api/studies/{study['id']}/{path}")
        assert response.status_code == 200, (path, response.text[:500])
    heatmap = client.get(f"/api/runs/{he['id']}/histograms?layer=conv_0").json()
    assert heatmap["epochs"] == [0, 1, 2]
    # Each epoch's row holds the 3·3·1·4 weights of conv_0 (the shared edges cover every value).
    assert [round(sum(row) + below + above) for row, below, above in
            zip(heatmap["counts"], heatmap["below"], heatmap["above"])] == [36, 36, 36]
    # What trained the runs is kept with each and named in the page's header (numbers repeat within one).
    import keras

    environment = study["runs"][0]["environment"]
    assert all(run["environment"] == environment for run in study["runs"])
    assert environment["backend"] == keras.backend.backend() and environment["data"].startswith("sha256:")
    header = client.get(f"/studies/{study['id']}").text
    assert f"Keras {keras.__version__} on " in header and environment["data"] in header
    assert "environments, whose numbers differ" not in header


def test_a_batchnorm_mlp_study_trains_and_records_its_dense_layers(client):
    study = trained_study(client, SMALL, name="batchnorm", initializers=["he_normal", "random_uniform"],
                          model={"hidden_units": [32, 16], "normalization": "batchnorm"})
    assert [run["status"] for run in study["runs"]] == ["succeeded"] * 2
    for run in study["runs"]:
        found = layers(client, run["id"], 2)
        assert list(found) == ["dense_0", "bn_0", "dense_1", "bn_1", "output"]
        assert found["dense_0"]["bias"] is None  # no bias before a BatchNorm
        assert found["output"]["bias"] is not None and found["dense_0"]["gradient"]["norm"] > 0
        # The BatchNorm's own parameters, recorded beside the layer they normalize.
        bn_1 = found["bn_1"]
        assert bn_1["index"] == found["dense_1"]["index"] and bn_1["kernel"] is None
        assert all(sum(bn_1[kind]["counts"]) == 16 for kind in ("gamma", "beta", "moving_mean", "moving_variance"))
        at_init = layers(client, run["id"], 0)["bn_1"]
        assert at_init["gamma"]["min"] == at_init["gamma"]["max"] == 1.0
        assert at_init["moving_variance"]["min"] == 1.0 and at_init["moving_mean"]["max"] == 0.0
    # The histogram views of the study page take the new kinds, and the exports carry them.
    for kind in ("gamma", "beta", "moving_mean", "moving_variance"):
        grid = client.get(f"/api/studies/{study['id']}/histograms?epoch=2&kind={kind}")
        assert grid.status_code == 200, grid.text
        assert [layer["layer"] for layer in grid.json()["layers"]] == ["bn_0", "bn_1"], kind
    heatmap = client.get(f"/api/runs/{study['runs'][0]['id']}/histograms?layer=bn_0&kind=gamma").json()
    assert heatmap["epochs"] == [0, 1, 2]
    csv = client.get(f"/api/studies/{study['id']}/export?format=csv").text
    assert ",bn_1,1,gamma,mean," in csv


def test_bad_model_combinations_are_422s_naming_the_field(client):
    for model, field in (({"family": "mlp", "conv_channels": [8]}, "model.conv_channels"),
                         ({"family": "cnn", "conv_channels": [8] * 5}, "model.conv_channels"),
                         ({"hidden_units": [8, 8], "residual": True}, "model.hidden_units"),
                         ({"normalization": "groupnorm"}, "model.normalization")):
        response = client.post("/api/studies", json={**SMALL, "initializers": ["he_normal"], "model": model})
        assert response.status_code == 422, (model, response.text)
        assert [item["field"] for item in response.json()["detail"]] == [field], response.text
