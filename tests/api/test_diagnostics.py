"""POST /api/diagnostics/signal-propagation and its page: the API in-process, the probe answered by a
real worker process on the probe queue (the API imports no Keras), on the real MNIST files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from support import processes

URL = "/api/diagnostics/signal-propagation"
SEED_002 = {"model": {"hidden_units": [256] * 20, "activation": "relu"},
            "initializers": ["he_normal", "uniform_fan_in"], "dataset": {"name": "mnist"}}


@pytest.fixture(scope="module")
def probe_env(tmp_path_factory, data_dir):
    """A migrated embedded deployment and one worker process that serves its probe queue."""
    state = tmp_path_factory.mktemp("probe") / "state"
    env = {"INITLAB_STATE_DIR": str(state), "INITLAB_DATA_DIR": str(data_dir), "INITLAB_WORKER_THREADS": "1"}
    processes.run_cli(["migrate"], env)
    worker = processes.start(["worker", "--name", "probe-test", "--queues", "initlab.probe"], env,
                             state.parent / "worker.log")
    yield env
    processes.stop(worker)


@pytest.fixture
def client(probe_env, monkeypatch):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import get_settings

    for key, value in probe_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("INITLAB_PROBE_WAIT_S", "120")  # the worker's first probe loads Keras and the data
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        yield client
    get_settings.cache_clear()


def _activation(network: dict) -> np.ndarray:
    return np.array([layer["activation_variance"] for layer in network["layers"] if layer["layer"] != "output"])


def test_seed_002_he_normal_keeps_the_signal_uniform_fan_in_loses_it(client):
    response = client.post(URL, json=SEED_002)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["depth"], answer["activation"], answer["dataset"], answer["probe_samples"]) == (20, "relu", "mnist", 256)
    he, uniform = answer["initializers"]
    assert (he["id"], he["name"], uniform["id"]) == ("he_normal", "He normal", "uniform_fan_in")
    assert [layer["layer"] for layer in he["layers"]] == [f"dense_{i}" for i in range(20)] + ["output"]
    assert [layer["index"] for layer in he["layers"]] == list(range(1, 22))
    he_ratio, uniform_ratio = _activation(he) / _activation(he)[0], _activation(uniform) / _activation(uniform)[0]
    assert np.all((he_ratio >= 1 / 4) & (he_ratio <= 4)), he_ratio
    assert uniform_ratio[-1] < 1 / 100, uniform_ratio
    assert all(0 <= layer["dead_fraction"] <= 1 for layer in he["layers"][:-1])
    assert he["layers"][-1]["dead_fraction"] is None  # the logits are no ReLU layer
    assert all(layer["gradient_variance"] > 0 and 0 <= layer["constant_fraction"] <= 1 for layer in he["layers"])


def test_zeros_shows_every_hidden_unit_dead(client):
    body = {"model": {"hidden_units": [32, 32, 32]}, "initializers": ["zeros", "he_normal"],
            "dataset": {"name": "fashion_mnist", "train_samples": 500}, "probe_samples": 64, "seed": 3}
    zeros, he = client.post(URL, json=body).json()["initializers"]
    assert [layer["dead_fraction"] for layer in zeros["layers"][:3]] == [1.0, 1.0, 1.0]
    assert max(layer["dead_fraction"] for layer in he["layers"][:3]) < 1.0
    assert client.post(URL, json=body).json()["initializers"][1] == he  # seeded: the same answer again


def test_overflow_travels_as_strings(client):
    response = client.post(URL, json={"model": {"hidden_units": [256] * 20}, "initializers": ["ones"],
                                      "dataset": {"name": "mnist"}, "probe_samples": 32})
    assert response.status_code == 200
    json.loads(response.text, parse_constant=lambda token: pytest.fail(f"bare {token} in the JSON"))
    last = response.json()["initializers"][0]["layers"][-1]
    assert last["activation_variance"] in ("NaN", "Infinity")
    assert last["dead_fraction"] is None and last["constant_fraction"] == "NaN"  # logits: no ReLU; an overflow


@pytest.mark.parametrize(("patch", "field", "rule"), [
    ({"model": {"hidden_units": [8] * 101}}, "model.hidden_units", "at most 100 hidden layers (INITLAB_MAX_HIDDEN_LAYERS)"),
    ({"initializers": ["he_magic"]}, "initializers.0.id", "unknown initializer 'he_magic'"),
    ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
    ({"model": {"hidden_units": [8], "depth": 3}}, "model.depth", "Extra inputs are not permitted"),
    ({"initializers": []}, "initializers", "at least 1 item"),
    ({"initializers": ["he_normal", "he_normal"]}, "initializers", "listed once"),
    ({"bias_initializer": "orthogonal"}, "bias_initializer", "cannot initialize a bias"),
    ({"dataset": {"name": "cifar10"}}, "dataset.name", "unknown data set"),
    ({"probe_samples": 1}, "probe_samples", "greater than or equal to 2"),
    ({"probe_samples": 513}, "probe_samples", "less than or equal to 512"),
    ({"model": {"hidden_units": [800] * 30}}, "initializers", "16,000,000 weights in all (INITLAB_MAX_PROBE_WEIGHTS)"),
    ({"model": {"hidden_units": [4000, 1] * 25}, "probe_samples": 512}, "probe_samples", "512 samples × "),
    ({"model": {"family": "cnn", "conv_channels": [300], "hidden_units": []}}, "model.conv_channels",
     "at most 256 channels per conv layer (INITLAB_MAX_CONV_CHANNELS)"),
    ({"model": {"family": "cnn", "conv_channels": [64] * 8, "pooling": "none", "hidden_units": []}}, "probe_samples",
     "hidden-layer values"),
    # 2 × 784 × 64 values a sample: 25.7 M activations for one network, past the limit for two.
    ({"model": {"family": "cnn", "conv_channels": [64, 64], "pooling": "none", "hidden_units": []}}, "probe_samples",
     "256 samples × 100,352 hidden-layer values × 2 networks are 51,380,224 activations"),
    ({"model": {"hidden_units": [64, 64], "residual": True}}, "model.hidden_units", "an odd number of layers"),
    ({"model": {"dropout": 0.5}}, "model.dropout", "without dropout"),
])
def test_bad_input_is_a_422_naming_field_and_rule(client, patch, field, rule):
    response = client.post(URL, json={**SEED_002, **patch})
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert any(item["field"] == field and rule in item["msg"] for item in details), details


def test_a_batchnorm_cnn_is_probed_with_its_own_layer_names(client):
    """The model block of a study, any family: each conv channel is a unit, and BatchNorm on the
    probe batch's statistics gives every normalized layer unit pre-activation variance."""
    body = {"model": {"family": "cnn", "conv_channels": [4, 8], "pooling": "max", "hidden_units": [16],
                      "normalization": "batchnorm"},
            "initializers": ["uniform_0_1", "he_normal"], "dataset": {"name": "fashion_mnist", "train_samples": 500},
            "probe_samples": 64}
    response = client.post(URL, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["depth"] == 3
    for network in answer["initializers"]:
        assert [(layer["layer"], layer["units"]) for layer in network["layers"]] == [
            ("conv_0", 4), ("conv_1", 8), ("dense_0", 16), ("output", 10)]
        assert all(0.8 < layer["preactivation_variance"] <= 1 for layer in network["layers"][:-1]), network


def test_depth_limit_comes_from_settings(client, monkeypatch):
    from app.settings import get_settings

    monkeypatch.setenv("INITLAB_MAX_HIDDEN_LAYERS", "5")
    get_settings.cache_clear()
    response = client.post(URL, json={**SEED_002, "model": {"hidden_units": [16] * 6}})
    assert response.status_code == 422
    assert "at most 5 hidden layers" in response.json()["detail"][0]["msg"]


def test_a_probe_the_worker_cannot_answer_is_a_503_that_says_why(client, probe_env, monkeypatch, tmp_path):
    """The worker's missing data set, as the API reports it: stored by a worker that looks in an empty folder."""
    from app.domain.probe import SignalProbeSpec
    from app.settings import get_settings
    from app.storage import probes
    from worker.probes import execute_probe

    spec = SignalProbeSpec.model_validate({**SEED_002, "model": {"hidden_units": [8]}, "seed": 77})
    probe, _ = probes.probe_for(spec.key(), spec.model_dump(mode="json"))
    monkeypatch.setenv("INITLAB_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    get_settings.cache_clear()
    assert execute_probe(probe["id"]) == "failed"
    response = client.get(f"{URL}/{probe['id']}")
    assert response.status_code == 503
    assert "INITLAB_DATA_DIR" in response.json()["detail"] and "mnist" in response.json()["detail"]
    assert client.get(f"{URL}/99999").status_code == 404


def test_a_slow_answer_is_a_202_with_a_url_to_poll(client, monkeypatch):
    from app.settings import get_settings

    monkeypatch.setenv("INITLAB_PROBE_WAIT_S", "0")
    get_settings.cache_clear()
    body = {**SEED_002, "model": {"hidden_units": [16, 16]}, "seed": 123}
    first = client.post(URL, json=body)
    assert first.status_code == 202 and first.json()["poll"].startswith(URL + "/")
    answer = processes.wait_for(lambda: (r := client.get(first.json()["poll"])).status_code == 200 and r.json(), 120,
                                what="the worker's answer")
    assert [net["id"] for net in answer["initializers"]] == ["he_normal", "uniform_fan_in"]
    assert client.post(URL, json=body).json() == answer  # the same question: the stored answer at once


def test_page_and_schema(client):
    page = client.get("/diagnostics/signal-propagation")
    assert page.status_code == 200
    assert "/static/signal.js" in page.text and "/static/vendor/plotly-initlab.min.js?v=" in page.text
    assert 'max="100"' in page.text  # the depth bound is the server's own
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths[URL] and "/diagnostics/signal-propagation" not in paths
