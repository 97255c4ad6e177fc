"""Signal propagation at init on real MNIST images, through the network a run would train.

Seed 002's argument: with ReLU, He's √(2/n) scaling keeps the activation variance of a deep
network where the first layer put it, while the ±1/√n uniform rule (variance 1/(3n)) loses a
factor of about 6 per layer. Checked here on 20 layers, over three seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.domain.spec import RunSetup, run_setup
from worker.training.datasets import DatasetUnavailable, prepare_data
from worker.training.probe import probe_indices
from worker.training.signal import load_data
from worker.training.signal import measure as measure_group

DEPTH, WIDTH = 20, 256


@pytest.fixture(scope="module")
def data(data_dir):
    return load_data("mnist", data_dir)


def _config(initializer: str, seed: int = 0, depth: int = DEPTH, activation: str = "relu", **extra) -> RunSetup:
    return run_setup(0, seed, dataset="mnist", hidden_units=[WIDTH] * depth, activation=activation,
                     initializer=initializer, **extra)


def measure(setup: RunSetup, data, size: int = 256):
    """One network alone (a group of one)."""
    return measure_group([setup], data, size)[0]


def _activation_variances(result) -> np.ndarray:
    return np.array([layer.activation_variance for layer in result.layers[:-1]])  # hidden layers only


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seed_002_he_normal_keeps_the_signal_and_uniform_fan_in_loses_it(data, seed):
    he = _activation_variances(measure(_config("he_normal", seed), data))
    uniform = _activation_variances(measure(_config("uniform_fan_in", seed), data))
    assert len(he) == len(uniform) == DEPTH
    assert np.all(he / he[0] <= 4) and np.all(he / he[0] >= 1 / 4), he / he[0]
    assert uniform[-1] < uniform[0] / 100, uniform / uniform[0]
    # Not a shrink of one bad layer: it falls layer after layer, as 1/(3n) × 2 per ReLU layer predicts.
    assert np.all(np.diff(np.log(uniform)) < 0)


def test_backward_signal_vanishes_towards_the_input_under_uniform_fan_in(data):
    he = measure(_config("he_normal"), data).layers
    uniform = measure(_config("uniform_fan_in"), data).layers
    assert uniform[0].gradient_variance < uniform[DEPTH - 1].gradient_variance / 100
    assert he[DEPTH - 1].gradient_variance / 4 <= he[0].gradient_variance <= 4 * he[DEPTH - 1].gradient_variance


def test_output_layer_matches_the_model_a_run_builds(data):
    """The layer-by-layer pass is the model's own on the run's probe batch: same logits, and the
    logits' gradient is softmax − one-hot."""
    import keras

    from worker.training.layers import rows_variable
    from worker.training.model import build_network

    config = _config("glorot_normal", seed=5, depth=3, activation="tanh")
    result = measure(config, data, size=128)
    keras.backend.clear_session(free_memory=False)
    model = build_network([config], *rows_variable(data.x_train, data.x_train[:0]))
    index = probe_indices(len(data.y_train), 5, 128)
    y = data.y_train[index]
    logits = np.asarray(model(index[:, None].astype(np.int32), training=False), dtype=np.float64)[:, 0]
    assert result.samples == 128
    assert [layer.layer for layer in result.layers] == ["dense_0", "dense_1", "dense_2", "output"]
    assert [layer.units for layer in result.layers] == [WIDTH, WIDTH, WIDTH, 10]
    last = result.layers[-1]
    assert last.activation_variance == pytest.approx(np.var(logits), rel=1e-4)
    softmax = np.asarray(keras.ops.softmax(logits), dtype=np.float64)
    delta = softmax - np.eye(10)[y]
    assert last.gradient_variance == pytest.approx(np.var(delta), rel=1e-4)
    hidden = result.layers[0]
    assert hidden.activation_variance < hidden.preactivation_variance  # tanh squashes


def test_lsuv_is_rescaled_on_data_as_training_would_start(data):
    """LSUV's orthogonal start is rescaled to unit pre-activation variance before the probe, as training starts."""
    layers = measure(_config("lsuv", depth=10), data).layers
    orthogonal = measure(_config("orthogonal", depth=10), data).layers
    assert len(layers) == len(orthogonal) == 10 + 1
    assert all(0.5 < layer.preactivation_variance < 2 for layer in layers[:-1]), [l.preactivation_variance for l in layers]
    assert not 0.5 < orthogonal[0].preactivation_variance < 2


def test_zeros_kills_every_unit_and_he_normal_keeps_most_alive(data):
    zeros = measure(_config("zeros", depth=5), data).layers
    he = measure(_config("he_normal", depth=5), data).layers
    assert len(zeros) == len(he) == 5 + 1
    assert [layer.dead_fraction for layer in zeros[:-1]] == [1.0] * 5
    assert [layer.constant_fraction for layer in zeros] == [1.0] * 6  # the logits too: every input, one output
    assert zeros[-1].dead_fraction is None  # not a ReLU layer: "dead" does not apply
    assert all(layer.activation_variance == 0 and layer.gradient_variance == 0 for layer in zeros[:-1])
    assert zeros[-1].gradient_variance > 0  # the loss still reaches the logits
    assert he[0].dead_fraction < 0.05
    assert all(layer.dead_fraction < 0.5 for layer in he[:-1])


def test_dead_and_constant_are_counted_as_the_failure_tags_count_them(data):
    """tanh units are never "dead" (that needs a ReLU at 0); an all-zero tanh layer is constant."""
    tanh = measure(_config("zeros", depth=3, activation="tanh"), data).layers
    assert [layer.dead_fraction for layer in tanh] == [None] * 4
    assert [layer.constant_fraction for layer in tanh[:-1]] == [1.0] * 3


def test_a_group_measures_each_network_as_alone(data):
    setups = [_config(name, depth=4) for name in ("he_normal", "uniform_fan_in", "lsuv")]
    together = measure_group(setups, data)
    for setup, grouped in zip(setups, together):
        alone = measure(setup, data)
        assert grouped.initializer == setup.kernel.id
        for a, b in zip(grouped.layers, alone.layers):
            assert a.activation_variance == pytest.approx(b.activation_variance, rel=1e-5)
            assert a.gradient_variance == pytest.approx(b.gradient_variance, rel=1e-4)
            assert a.dead_fraction == b.dead_fraction


def test_exploding_network_reports_overflow_without_failing(data):
    layers = measure(_config("ones", depth=20), data).layers
    values = [layer.activation_variance for layer in layers]
    assert np.isfinite(values[0]) and values[1] > values[0] * 100
    assert not np.isfinite(values[-1])


def test_same_seed_same_answer_other_seed_other_weights(data):
    first = measure(_config("he_uniform", seed=3, depth=4), data)
    again = measure(_config("he_uniform", seed=3, depth=4), data)
    other = measure(_config("he_uniform", seed=4, depth=4), data)
    assert [vars(layer) for layer in first.layers] == [vars(layer) for layer in again.layers]
    assert first.layers[-1].activation_variance != other.layers[-1].activation_variance


def test_data_is_the_training_subset_a_study_trains_on(data_dir):
    data = load_data("fashion_mnist", data_dir, train_samples=1000, subset_seed=2)
    expected = prepare_data("fashion_mnist", 1000, 50, data_dir, 2)
    np.testing.assert_array_equal(data.x_train, expected.x_train)
    np.testing.assert_array_equal(data.y_train, expected.y_train)
    result = measure(run_setup(0, 0, dataset="fashion_mnist", hidden_units=[8], initializer="he_normal"), data, size=5000)
    assert result.samples == 1000  # a probe never exceeds the subset


def _logits(setup: RunSetup, data, size: int, training: bool) -> np.ndarray:
    """The logits of the model a run with ``setup`` builds, on its probe batch, straight from Keras."""
    import keras

    from worker.training.layers import rows_variable
    from worker.training.model import build_network

    keras.backend.clear_session(free_memory=False)
    model = build_network([setup], *rows_variable(data.x_train, data.x_train[:0]))
    index = probe_indices(len(data.y_train), setup.seed, size)
    return np.asarray(model(index[:, None].astype(np.int32), training=training), dtype=np.float64)[:, 0]


def test_a_cnn_is_probed_layer_by_layer_with_channels_as_units(data):
    setup = _config("he_normal", seed=2, depth=1, family="cnn", conv_channels=[4, 8], pooling="max")
    layers = measure(setup, data, size=64).layers
    assert [layer.layer for layer in layers] == ["conv_0", "conv_1", "dense_0", "output"]
    assert [layer.units for layer in layers] == [4, 8, WIDTH, 10]
    assert [layer.index for layer in layers] == [1, 2, 3, 4]
    assert layers[-1].activation_variance == pytest.approx(np.var(_logits(setup, data, 64, False)), rel=1e-4)
    assert all(0 < layer.gradient_variance < np.inf for layer in layers)
    assert all(0 <= layer.dead_fraction < 0.5 for layer in layers[:-1])


def test_batchnorm_restores_the_signal_that_uniform_fan_in_loses(data):
    """Normalization on the probe batch's statistics, as training normalizes: each layer's
    pre-activation has unit variance (γ = 1, β = 0) however small the layer before it made the
    signal, where the same net without BatchNorm loses it layer after layer."""
    plain = measure(_config("uniform_fan_in", depth=10), data).layers
    normed_setup = _config("uniform_fan_in", depth=10, normalization="batchnorm")
    normed = measure(normed_setup, data).layers
    assert [layer.layer for layer in normed] == [layer.layer for layer in plain]
    assert all(0.95 < layer.preactivation_variance < 1.0 for layer in normed[:-1]), [l.preactivation_variance for l in normed]
    assert plain[-2].preactivation_variance < plain[0].preactivation_variance / 100
    # The logits are the model's own in training mode (batch statistics); inference mode differs.
    assert normed[-1].activation_variance == pytest.approx(np.var(_logits(normed_setup, data, 256, True)), rel=1e-4)
    assert normed[-1].activation_variance != pytest.approx(np.var(_logits(normed_setup, data, 256, False)), rel=1e-2)


def test_a_zero_init_residual_block_starts_as_its_skip(data):
    """Goyal et al.: with the block's last BatchNorm scale at 0 the block adds nothing, so the
    output of dense_2 (the end of the block dense_1-dense_2) is the output of dense_0."""
    layers = measure(_config("he_normal", depth=5, normalization="batchnorm", residual=True,
                             zero_init_residual=True), data).layers
    assert [layer.layer for layer in layers] == ["dense_0", "dense_1", "dense_2", "dense_3", "dense_4", "output"]
    for start, end in ((0, 2), (2, 4)):
        assert layers[end].activation_variance == pytest.approx(layers[start].activation_variance, rel=1e-6)
    assert layers[1].activation_variance != pytest.approx(layers[0].activation_variance, rel=1e-2)


@pytest.mark.parametrize("model", [
    {"family": "cnn", "conv_channels": [4, 4, 4], "pooling": "avg", "normalization": "layernorm", "residual": True},
    {"family": "cnn", "conv_channels": [4, 8], "pooling": "none", "normalization": "batchnorm", "dropout": 0.5},
    {"normalization": "layernorm", "residual": True, "zero_init_residual": True},
])
def test_every_family_is_measured_alike_in_a_group_and_alone(data, model):
    setups = [_config(name, depth=3, **model) for name in ("he_normal", "lsuv", "delta_orthogonal")]
    together = measure_group(setups, data, 32)
    for setup, grouped in zip(setups, together):
        alone = measure(setup, data, 32)
        assert [layer.layer for layer in grouped.layers] == [layer.layer for layer in alone.layers]
        for a, b in zip(grouped.layers, alone.layers):
            assert np.isfinite(a.activation_variance) and np.isfinite(a.gradient_variance)
            assert a.activation_variance == pytest.approx(b.activation_variance, rel=1e-4)
            assert a.gradient_variance == pytest.approx(b.gradient_variance, rel=1e-3)


def test_missing_data_set_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(DatasetUnavailable, match="INITLAB_DATA_DIR"):
        load_data("mnist", tmp_path, download=False)


JAX_PROBE = """
import json, sys
import numpy as np
from app.domain.spec import run_setup
from worker.training.signal import load_data, measure
data = load_data("mnist", sys.argv[1])
out = {}
for initializer in ("he_normal", "uniform_fan_in"):
    config = run_setup(0, 0, dataset="mnist", hidden_units=[256] * 20, activation="relu", initializer=initializer)
    layers = measure([config], data)[0].layers
    out[initializer] = {"activation": [layer.activation_variance for layer in layers[:-1]],
                        "gradient": [layer.gradient_variance for layer in layers[:-1]]}
# BatchNorm on batch statistics inside jax.value_and_grad: the moving-statistics updates must stay out of the trace.
config = run_setup(0, 0, dataset="mnist", hidden_units=[16], family="cnn", conv_channels=[4, 4, 4], pooling="none",
                   normalization="batchnorm", residual=True, zero_init_residual=True, initializer="uniform_fan_in")
layers = measure([config], data, 64)[0].layers
out["cnn"] = {"names": [layer.layer for layer in layers], "pre": [layer.preactivation_variance for layer in layers],
              "activation": [layer.activation_variance for layer in layers]}
print(json.dumps(out))
"""


def test_seed_002_argument_holds_on_the_jax_backend_too(data_dir):
    # The probe's gradient code branches per backend; this runs its JAX branch for real.
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from support.require import require_module

    require_module("jax")  # the test extras install it: missing under CI is a failure
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", JAX_PROBE, str(data_dir)], cwd=Path(__file__).resolve().parents[3],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    he, uniform = (np.array(found[name]["activation"]) for name in ("he_normal", "uniform_fan_in"))
    assert len(he) == len(uniform) == DEPTH
    assert np.all(he / he[0] <= 4) and np.all(he / he[0] >= 1 / 4), he / he[0]
    assert uniform[-1] < uniform[0] / 100
    he_grad, uniform_grad = (np.array(found[name]["gradient"]) for name in ("he_normal", "uniform_fan_in"))
    assert len(he_grad) == len(uniform_grad) == DEPTH
    assert uniform_grad[0] < uniform_grad[-1] / 100 and he_grad[-1] / 4 <= he_grad[0] <= 4 * he_grad[-1]
    cnn = found["cnn"]
    assert cnn["names"] == ["conv_0", "conv_1", "conv_2", "dense_0", "output"]
    assert 0.9 < cnn["pre"][0] < 1.0  # batch-normalized: v / (v + ε), with v small on a 9-pixel fan-in
    assert cnn["activation"][2] == pytest.approx(cnn["activation"][0], rel=1e-5)  # a zero-init block is its skip
