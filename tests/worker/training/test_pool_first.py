"""A plain convolution followed by max pooling pools before its bias and activation in a training or
validation step (run_layers.pool_first): the same outputs, gradients and metrics as convolution →
bias → activation → pooling, layer by layer, which everything else still gets (the recorder's taps,
the signal probe, LSUV)."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain.spec import run_setup


def layers(activation: str, runs: int, pooled_first: bool):
    import keras

    from worker.training.run_layers import RunPooling, StackedConv, pool_first

    conv = StackedConv(8, 3, activation, [keras.initializers.HeNormal(seed=k) for k in range(runs)],
                       [keras.initializers.RandomNormal(stddev=0.5, seed=10 + k) for k in range(runs)])
    pooling = RunPooling("max")
    if pooled_first:
        assert pool_first(conv, pooling, activation)
    return conv, pooling


def forward_and_gradients(activation: str, pooled_first: bool, inputs, training: bool = True):
    import tensorflow as tf

    conv, pooling = layers(activation, len(inputs), pooled_first)
    with tf.GradientTape() as tape:
        outputs = pooling(conv(inputs, training=training), training=training)
        stacked = tf.stack(outputs)
        loss = tf.reduce_sum(tf.sin(stacked) * tf.cast(tf.range(stacked.shape[-1]), stacked.dtype))
    kernel, bias = tape.gradient(loss, [conv.kernel, conv.bias])
    return np.asarray(stacked), np.asarray(kernel), np.asarray(bias)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "linear"])
def test_pooling_first_gives_the_layer_by_layer_numbers(activation):
    rng = np.random.default_rng(0)
    # Odd sides: 'valid' pooling drops the last row and column either way.
    inputs = [rng.normal(size=(6, 15, 13, 3)).astype(np.float32) for _ in range(2)]
    expected = forward_and_gradients(activation, False, inputs)
    found = forward_and_gradients(activation, True, inputs)
    assert found[0].shape == expected[0].shape == (2, 6, 7, 6, 8)
    np.testing.assert_array_equal(found[0], expected[0])  # exact: rounding is monotone
    np.testing.assert_array_equal(found[1], expected[1])  # the kernel's gradient sees the same upstream values
    np.testing.assert_allclose(found[2], expected[2], rtol=1e-5, atol=1e-6)  # summed over fewer positions
    if activation != "linear":
        assert 0.1 < (found[0] <= 0).mean() < 0.9  # both sides of the kink were exercised


def test_outside_training_the_convolution_gives_its_own_output():
    rng = np.random.default_rng(1)
    inputs = [rng.normal(size=(4, 12, 12, 3)).astype(np.float32)]
    conv, _ = layers("relu", 1, True)
    assert np.asarray(conv(inputs, training=False)[0]).shape == (4, 12, 12, 8)
    assert np.asarray(conv(inputs, training=True)[0]).shape == (4, 6, 6, 8)
    expected = forward_and_gradients("relu", False, inputs, training=False)
    np.testing.assert_array_equal(forward_and_gradients("relu", True, inputs, training=False)[0], expected[0])


@pytest.mark.parametrize("model, pooled_first", [
    ({"pooling": "max", "activation": "relu"}, True),
    ({"pooling": "max", "activation": "linear"}, True),
    ({"pooling": "max", "activation": "leaky_relu"}, True),
    ({"pooling": "avg", "activation": "relu"}, False),  # avg(relu(x)) is not relu(avg(x))
    ({"pooling": "max", "activation": "tanh"}, False),  # its float approximation is not promised monotone
    ({"pooling": "max", "activation": "relu", "normalization": "batchnorm"}, False),  # statistics of every position
    ({"pooling": "max", "activation": "relu", "dropout": 0.2}, False),  # masks drawn for every position
    # The first convolution stays plain; a block's sum comes before its activation.
    ({"pooling": "max", "activation": "relu", "residual": True}, [True, False, False]),
])
def test_the_network_pools_first_only_where_that_is_exact(model, pooled_first):
    from worker.training.layers import rows_variable
    from worker.training.model import build_network
    from worker.training.run_layers import StackedConv

    setup = run_setup(1, 0, dataset="mnist", family="cnn", conv_channels=[4, 4, 4], hidden_units=[8], **model)
    images = np.zeros((4, 784), dtype=np.uint8)
    network = build_network([setup], *rows_variable(images, images[:2]))
    convs = [layer for layer in network.layers if isinstance(layer, StackedConv)]
    expected = pooled_first if isinstance(pooled_first, list) else [pooled_first] * 3
    assert [layer.pools_first for layer in convs] == expected


def test_validation_pools_first_and_gives_the_layer_by_layer_metrics(monkeypatch):
    from worker.training.layers import RunMetrics, rows_variable, summed_run_losses
    from worker.training.model import GroupNetwork, build_network
    from worker.training.run_layers import RunPooling, StackedConv

    setups = [run_setup(run, run - 1, dataset="mnist", family="cnn", conv_channels=[4, 8], hidden_units=[8],
                        pooling="max", activation="relu", bias_initializer="random_normal") for run in (1, 2)]
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(64, 784), dtype=np.uint8)
    network = build_network(setups, *rows_variable(images, images[:8]))
    assert isinstance(network, GroupNetwork)
    index = np.stack([rng.permutation(64)[:32], rng.permutation(64)[:32]], axis=1).astype(np.int32)
    labels = rng.integers(0, 10, size=index.shape)

    def evaluate(pooled_first: bool):
        for layer in network.layers:
            if isinstance(layer, StackedConv):
                layer.pools_first = pooled_first
            elif isinstance(layer, RunPooling):
                layer.done_by_conv = pooled_first
        network.compile(loss=summed_run_losses, metrics=[RunMetrics(2)])  # a new compiled step
        return network.evaluate(index, labels, batch_size=16, verbose=0, return_dict=True)

    traced = []  # layers tracing the pooled-first form: the compiled step's Python runs once per trace
    pooled_run = StackedConv._pooled_run
    monkeypatch.setattr(StackedConv, "_pooled_run", lambda self, *args: traced.append(self.name) or pooled_run(self, *args))
    found = evaluate(True)
    assert sorted(set(traced)) == ["conv_0", "conv_1"]
    traced.clear()
    expected = evaluate(False)
    assert not traced
    for name in ("run_loss", "run_accuracy"):
        np.testing.assert_array_equal(np.asarray(found[name]), np.asarray(expected[name]))
    # What the recorder's taps read: the convolution's own output, outside a validation step.
    assert np.asarray(network.get_layer("conv_0")([np.zeros((1, 28, 28, 1), np.float32)] * 2)[0]).shape == (1, 28, 28, 4)
