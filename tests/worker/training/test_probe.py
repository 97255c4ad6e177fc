"""worker/training/probe.py: what the recorder measures on a run's probe batch.

With BatchNorm the probe must see what a training step sees: each layer normalized with the
probe batch's own statistics (not the moving ones, which are 0 and 1 at initialization and make
BatchNorm the identity), dropout off, and the moving statistics left as they were.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from app.domain.spec import run_setup
from worker.training.layers import rows_variable
from worker.training.model import build_network, normalization_layers, weighted_layers
from worker.training.probe import kernel_gradients, layer_outputs, output_model, probe_indices


def _network(data, normalization: str, initializer: str = "uniform_0_1"):
    setups = [run_setup(index + 1, seed, dataset="fashion_mnist", train_samples=300, validation_samples=200,
                        hidden_units=[32, 16], normalization=normalization, initializer=init, epochs=1)
              for index, (seed, init) in enumerate([(0, initializer), (1, "he_normal")])]
    keras.utils.set_random_seed(0)
    model = build_network(setups, *rows_variable(data.images_train, data.images_val))
    rows = np.stack([probe_indices(len(data.y_train), setup.seed, 64) for setup in setups], axis=1).astype(np.int32)
    return model, rows, data.y_train[rows]


def _moving(model) -> list[np.ndarray]:
    return [np.array(variable) for layer in normalization_layers(model) for variable in layer.non_trainable_variables]


def _training_step_gradients(model, rows, labels) -> list[np.ndarray]:
    """The kernels' gradients a training step computes (training=True), with the moving statistics put back."""
    saved = _moving(model)
    with tf.GradientTape() as tape:
        logits = model(tf.constant(rows), training=True)
        per_sample = keras.losses.sparse_categorical_crossentropy(np.broadcast_to(labels, logits.shape[:2]), logits,
                                                                  from_logits=True)
        loss = tf.reduce_mean(per_sample)
    gradients = tape.gradient(loss, [layer.kernel for layer in weighted_layers(model)])
    for variable, value in zip([v for layer in normalization_layers(model) for v in layer.non_trainable_variables],
                               saved):
        variable.assign(value)
    return [np.asarray(gradient) for gradient in gradients]


def test_batchnorm_gradients_are_the_training_steps_and_leave_the_moving_statistics(data):
    model, rows, labels = _network(data, "batchnorm")
    before = _moving(model)
    probed = kernel_gradients(model, rows, labels)
    assert all(np.array_equal(a, b) for a, b in zip(_moving(model), before)), "the probe moved BatchNorm's statistics"
    for probe, step in zip(probed, _training_step_gradients(model, rows, labels)):
        np.testing.assert_allclose(probe, step, rtol=1e-4, atol=1e-7)
    # Inference mode (the moving statistics: BatchNorm as the identity at init) is another answer: a
    # uniform [0, 1] kernel's output gradient is orders of magnitude larger there.
    with tf.GradientTape() as tape:
        logits = model(tf.constant(rows), training=False)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            np.broadcast_to(labels, logits.shape[:2]), logits, from_logits=True))
    inference = tape.gradient(loss, weighted_layers(model)[-1].kernel)
    uniform_run = 0
    assert np.linalg.norm(np.asarray(inference)[uniform_run]) > 100 * np.linalg.norm(probed[-1][uniform_run])


def test_batchnorm_layer_outputs_are_normalized_on_the_probe_batch(data):
    model, rows, _ = _network(data, "batchnorm")
    norms = normalization_layers(model)
    outputs = layer_outputs(output_model(model, norms), rows)
    for values in outputs:  # (runs, batch, units): each unit of each run has mean 0 over the batch and
        # variance var / (var + ε) (γ = 1, β = 0 at init): 1 but for units that hardly vary
        variances = values.var(axis=1)
        np.testing.assert_allclose(values.mean(axis=1), 0.0, atol=1e-4)
        assert np.all(variances < 1.0 + 1e-4) and np.median(variances) > 0.99


def test_without_normalization_the_probe_is_plain_inference(data):
    model, rows, labels = _network(data, "none", initializer="he_normal")
    probed = kernel_gradients(model, rows, labels)
    with tf.GradientTape() as tape:
        logits = model(tf.constant(rows), training=False)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            np.broadcast_to(labels, logits.shape[:2]), logits, from_logits=True))
    for probe, plain in zip(probed, tape.gradient(loss, [layer.kernel for layer in weighted_layers(model)])):
        np.testing.assert_array_equal(probe, np.asarray(plain))


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.backend.clear_session(free_memory=False)
    yield
