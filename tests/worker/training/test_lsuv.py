"""LSUV on real data: every rescaled layer's pre-activations have unit variance at init,
measured here independently with numpy, and that is what a run records at epoch 0."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain.spec import RunSetup, run_setup
from worker.training.lsuv import TOLERANCE, lsuv_indices, lsuv_layers, rescale_group
from worker.training.sink import MemorySink
from worker.training.trainer import train_group

ACTIVATIONS = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh}


def config(**overrides) -> RunSetup:
    settings = dict(run_id=1, seed=5, dataset="fashion_mnist", train_samples=300, validation_samples=200,
                    hidden_units=[64, 64, 32], epochs=1, batch_size=32, initializer="lsuv")
    settings.update(overrides)
    return run_setup(**settings)


def train_run(run: RunSetup, sink, data):
    return train_group([run], sink, data=data)[run.run_id]


def rescale_run(network, x_train: np.ndarray, run: RunSetup) -> list[float | None]:
    """LSUV on a lone run's network (a group of one), as train_group does before epoch 0."""
    return rescale_group(network, len(x_train), [run])[0]


@pytest.fixture(scope="module")
def data(data_dir):
    from worker.training.datasets import prepare_data

    _DATA["data"] = prepare_data("fashion_mnist", 300, 200, data_dir)
    return _DATA["data"]


_DATA = {}


def built(run: RunSetup, x_train: np.ndarray | None = None):
    """The run's network as train_group builds it (a group of one), before any LSUV.

    The network holds its data rows (``rows_variable``): LSUV measures on those, so a test
    that wants other inputs builds the network on them.
    """
    import keras

    from worker.training.layers import rows_variable
    from worker.training.model import build_network

    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(run.seed)
    data = _DATA["data"]
    rows = data.x_train if x_train is None else x_train
    return build_network([run], *rows_variable(rows, data.x_val))


def weights(network) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each Dense layer's (kernel, bias) of the lone run (slice 0), in float64."""
    from worker.training.model import weighted_layers

    return [tuple(np.asarray(w[0], dtype=np.float64) for w in layer.get_weights()) for layer in weighted_layers(network)]


def preactivation_variances(layers, x: np.ndarray, activation: str) -> list[float]:
    """Var(x·W + b) of each layer over samples and units, in float64, the output layer last."""
    variances, h = [], x.astype(np.float64)
    for position, (kernel, bias) in enumerate(layers):
        z = h @ kernel + bias
        variances.append(float(z.var()))
        h = ACTIVATIONS[activation](z) if position < len(layers) - 1 else z
    return variances


@pytest.mark.parametrize("activation, bias", [("relu", "zeros"), ("tanh", "random_uniform"), ("relu", "uniform_0_1")])
def test_every_layer_reaches_unit_variance_on_the_lsuv_batch(data, activation, bias):
    assert TOLERANCE == 0.1  # Mishkin & Matas's Tol_var: the bound the checks below hold the variances to
    run = config(activation=activation, bias_initializer=bias)
    network = built(run)
    batch = data.x_train[lsuv_indices(len(data.x_train), run.seed)]
    before = preactivation_variances(weights(network), batch, activation)
    assert any(abs(v - 1) >= TOLERANCE for v in before), before  # orthogonal alone is not there yet
    reported = rescale_run(network, data.x_train, run)
    after = preactivation_variances(weights(network), batch, activation)
    assert len(before) == len(after) == 4  # dense_0..dense_2 and the output layer, all LSUV here
    assert all(abs(v - 1) < TOLERANCE for v in after), after
    assert reported == pytest.approx(after, rel=1e-4)
    # A batch it never saw is near 1 too: the scale fits the data, not the 256 samples.
    held_out = np.setdiff1d(np.arange(len(data.x_train)), lsuv_indices(len(data.x_train), run.seed))
    assert len(held_out) > 0
    unseen = preactivation_variances(weights(network), data.x_train[held_out], activation)
    assert len(unseen) == 4 and all(0.5 < v < 2 for v in unseen), unseen


def test_only_kernels_of_lsuv_layers_move(data):
    run = config(output_initializer="glorot_uniform",
                 bias_initializer="constant", bias_initializer_params={"value": 0.1})
    assert lsuv_layers(run) == [True, True, True, False]
    network = built(run)
    start = weights(network)
    rescale_run(network, data.x_train, run)
    end = weights(network)
    assert len(start) == len(end) == 4
    for (k0, b0), (k1, b1) in zip(start[:-1], end[:-1]):
        np.testing.assert_array_equal(b0, b1)
        ratio = k1 / k0  # one factor per layer: the orthogonal directions are kept
        assert np.allclose(ratio, ratio.flat[0], rtol=1e-5) and not np.isclose(ratio.flat[0], 1.0)
    np.testing.assert_array_equal(start[-1][0], end[-1][0])  # the output keeps glorot_uniform
    assert lsuv_layers(config(initializer="he_normal", output_initializer="lsuv")) == [False, False, False, True]


def test_flat_input_leaves_weights_finite_and_untouched(data):
    run = config(bias_initializer="zeros")
    flat = np.zeros_like(data.x_train)
    network = built(run, flat)
    start = weights(network)
    rescale_run(network, flat, run)  # nothing varies: nothing to divide by
    end = weights(network)
    assert len(start) == len(end) == 4
    for (k0, _), (k1, _) in zip(start, end):
        assert np.all(np.isfinite(k1))
        np.testing.assert_array_equal(k0, k1)


def test_the_batch_is_repeatable_and_per_seed():
    first = lsuv_indices(1000, 3)
    assert len(first) == 256 and len(set(first)) == 256 and first.min() >= 0 and first.max() < 1000
    np.testing.assert_array_equal(first, lsuv_indices(1000, 3))
    assert not np.array_equal(first, lsuv_indices(1000, 4))
    assert len(lsuv_indices(100, 3)) == 100  # a subset smaller than the batch: all of it


def test_train_run_records_the_rescaled_weights_at_epoch_0(data):
    run = config(hidden_units=[32, 16])
    sink = MemorySink()
    assert train_run(run, sink, data=data).status == "succeeded"
    network = built(run)
    rescale_run(network, data.x_train, run)
    expected = weights(network)
    recorded = {r["layer"]: r for r in sink.layers[1][0] if r["kind"] == "kernel"}
    assert list(recorded) == ["dense_0", "dense_1", "output"] and len(expected) == 3
    for name, (kernel, _) in zip(["dense_0", "dense_1", "output"], expected):
        assert recorded[name]["std"] == pytest.approx(kernel.std(), rel=1e-5)
    orthogonal = weights(built(config(hidden_units=[32, 16], initializer="orthogonal")))
    assert recorded["dense_0"]["std"] != pytest.approx(orthogonal[0][0].std(), rel=1e-3)  # it did rescale


def _same_conv(h: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' 2-D convolution of (n, height, width, c_in) by (kh, kw, c_in, c_out), in numpy (float64)."""
    kh, kw = kernel.shape[:2]
    padded = np.pad(h, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = np.zeros((*h.shape[:3], kernel.shape[-1]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,co->nhwo", padded[:, i:i + h.shape[1], j:j + h.shape[2], :], kernel[i, j])
    return out + bias


def _max_pool(h: np.ndarray) -> np.ndarray:
    n, height, width, c = h.shape
    return h[:, :height // 2 * 2, :width // 2 * 2].reshape(n, height // 2, 2, width // 2, 2, c).max(axis=(2, 4))


def test_lsuv_rescales_conv_kernels_to_unit_variance_on_the_batch(data):
    """A CNN (conv 4-8, max pooling, Dense 16, output): every layer's pre-activations, rebuilt
    here in numpy from the rescaled weights, have variance 1 ± TOLERANCE on the LSUV batch."""
    from worker.training.model import weighted_layers

    run = config(family="cnn", conv_channels=[4, 8], hidden_units=[16])
    assert lsuv_layers(run) == [True, True, True, True]
    network = built(run)
    reported = rescale_run(network, data.x_train, run)
    (k0, b0), (k1, b1), (k2, b2), (k3, b3) = [
        tuple(np.asarray(w[0], dtype=np.float64) for w in layer.get_weights()) for layer in weighted_layers(network)]
    h = data.x_train[lsuv_indices(len(data.x_train), run.seed)].astype(np.float64).reshape(-1, 28, 28, 1)
    z0 = _same_conv(h, k0, b0)
    z1 = _same_conv(_max_pool(np.maximum(z0, 0)), k1, b1)
    z2 = _max_pool(np.maximum(z1, 0)).reshape(len(h), -1) @ k2 + b2
    z3 = np.maximum(z2, 0) @ k3 + b3
    variances = [float(z.var()) for z in (z0, z1, z2, z3)]
    assert all(abs(v - 1) < TOLERANCE for v in variances), variances
    assert reported == pytest.approx(variances, rel=1e-3)


def test_lsuv_on_a_residual_batchnorm_net_equals_its_lone_run_in_a_group(data):
    """Each slice rescaled on its own run's batch, skip projections included, as alone."""
    from support.fused import assert_same_layers

    model = dict(hidden_units=[32, 16, 16], residual=True, normalization="batchnorm")
    runs = [config(run_id=1, seed=0, **model), config(run_id=2, seed=1, **model)]
    assert lsuv_layers(runs[0]) == [True] * 5  # dense_0, dense_1, dense_2, proj_1, output
    fused, alone = MemorySink(), MemorySink()
    train_group(runs, fused, data=data)
    for run in runs:
        train_group([run], alone, data=data)
    for run in runs:
        assert_same_layers(fused, alone, run.run_id, gradient_relative=5e-3)
