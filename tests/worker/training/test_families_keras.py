"""A CNN and a BatchNorm MLP trained by initlab as a group of one, against the same network in plain
Keras (``Sequential`` of Conv2D / MaxPooling2D / BatchNormalization / Dense), with the same initial
weights, data order and optimizer: the metrics and final weights must be plain Keras's, as
test_trainer.py checks for the plain MLP. Fused-equals-alone (test_families.py) then carries this
to every slice of a group."""

from __future__ import annotations

import pytest

from app.domain.layers import BIAS, KERNEL, layer_seed
from app.domain.spec import run_setup
from worker.training.sink import MemorySink
from worker.training.trainer import epoch_order, train_group


def plain_keras(setup, layers_of):
    """The plain Keras twin of ``setup``'s network, each weighted layer drawn as initlab draws it."""
    import keras

    from worker.training.initializers import build

    weighted = {layer.name: layer for layer in setup.architecture().weighted()}

    def init(name):
        layer = weighted[name]
        return dict(kernel_initializer=build(setup.kernel_of(layer.seed_index),
                                             layer_seed(setup.seed, layer.seed_index, KERNEL)),
                    **({"bias_initializer": build(setup.bias, layer_seed(setup.seed, layer.seed_index, BIAS))}
                       if layer.bias else {"use_bias": False}))

    return layers_of(keras.layers, init), weighted


def fit_both(data, setup, layers, shape):
    import keras

    sink = MemorySink()
    train_group([setup], sink, data=data)
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(setup.seed)
    built, _ = layers
    model = keras.Sequential([keras.Input(shape), *built])
    model.compile(optimizer=keras.optimizers.Adam(0.001),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x_train, x_val = data.x_train.reshape((-1, *shape)), data.x_val.reshape((-1, *shape))
    histories = []
    for epoch in (1, 2):
        order = epoch_order(setup.seed, epoch, len(data.y_train))
        histories.append(model.fit(x_train[order], data.y_train[order], validation_data=(x_val, data.y_val),
                                   batch_size=setup.training.batch_size, shuffle=False, verbose=0).history)
    return sink, histories


def check(sink, histories, built, names):
    import keras

    for epoch, history in zip((1, 2), histories):
        mine = sink.epochs[1][epoch - 1]
        assert mine["loss"] == pytest.approx(history["loss"][-1], rel=1e-4)
        assert mine["val_loss"] == pytest.approx(history["val_loss"][-1], rel=1e-4)
        assert mine["val_accuracy"] == pytest.approx(history["val_accuracy"][-1], abs=1e-6)
    recorded = {record["layer"]: record for record in sink.layers[1][2] if record["kind"] == "kernel"}
    assert set(names) <= set(recorded)
    for name, layer in zip(names, [layer for layer in built if hasattr(layer, "kernel")]):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        assert recorded[name]["mean"] == pytest.approx(float(kernel.mean()), rel=1e-3, abs=1e-6)
        assert recorded[name]["std"] == pytest.approx(float(kernel.std()), rel=1e-3)


def test_a_lone_cnn_agrees_with_plain_keras(data_dir):
    from worker.training.datasets import prepare_data

    data = prepare_data("fashion_mnist", 256, 128, data_dir)
    setup = run_setup(1, 3, dataset="fashion_mnist", train_samples=256, validation_samples=128, family="cnn",
                      conv_channels=[4, 8], pooling="max", hidden_units=[16], initializer="he_normal",
                      epochs=2, batch_size=32)
    layers = plain_keras(setup, lambda L, init: [
        L.Conv2D(4, 3, padding="same", activation="relu", **init("conv_0")), L.MaxPooling2D(2),
        L.Conv2D(8, 3, padding="same", activation="relu", **init("conv_1")), L.MaxPooling2D(2),
        L.Flatten(), L.Dense(16, activation="relu", **init("dense_0")), L.Dense(10, **init("output"))])
    assert sorted(layers[1]) == ["conv_0", "conv_1", "dense_0", "output"]
    sink, histories = fit_both(data, setup, layers, (28, 28, 1))
    check(sink, histories, layers[0], ["conv_0", "conv_1", "dense_0", "output"])


def test_a_lone_batchnorm_mlp_agrees_with_plain_keras(data_dir):
    from worker.training.datasets import prepare_data

    data = prepare_data("mnist", 256, 128, data_dir)
    setup = run_setup(1, 5, dataset="mnist", train_samples=256, validation_samples=128, hidden_units=[24, 12],
                      normalization="batchnorm", initializer="glorot_uniform", output_initializer="glorot_uniform",
                      epochs=2, batch_size=32)
    layers = plain_keras(setup, lambda L, init: [
        L.Dense(24, **init("dense_0")), L.BatchNormalization(), L.Activation("relu"),
        L.Dense(12, **init("dense_1")), L.BatchNormalization(), L.Activation("relu"),
        L.Dense(10, **init("output"))])
    sink, histories = fit_both(data, setup, layers, (784,))
    check(sink, histories, layers[0], ["dense_0", "dense_1", "output"])
