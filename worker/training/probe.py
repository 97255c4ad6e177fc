"""Gradient probe: the loss gradient for each Dense kernel on one fixed batch.

Keras 3 has no backend-neutral gradient API, so this is the one place that branches on
the backend. The probe runs with ``training=False``: dropout off gives the gradient the
initialization itself produces, and it keeps the dropout layers' seed generators
untouched, so recording a run never changes how that run trains.
"""

from __future__ import annotations

import numpy as np

from worker.training.model import dense_layers, loss


def kernel_gradients(model, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """d(mean sparse categorical cross-entropy)/d(kernel), one array per Dense layer in order."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_gradients(model, x, y)
    if backend == "jax":
        return _jax_gradients(model, x, y)
    raise NotImplementedError(
        f"the gradient probe supports the tensorflow and jax backends, not '{backend}'; "
        "set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax for the worker"
    )


def _mean_loss(y, logits):
    import keras

    return keras.ops.mean(loss(y, logits))


def _tensorflow_gradients(model, x, y) -> list[np.ndarray]:
    import tensorflow as tf

    kernels = [layer.kernel for layer in dense_layers(model)]
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y)
    with tf.GradientTape() as tape:
        loss = _mean_loss(y, model(x, training=False))
    return [np.asarray(grad) for grad in tape.gradient(loss, kernels)]


def _jax_gradients(model, x, y) -> list[np.ndarray]:
    import jax

    trainable = model.trainable_variables
    position = {id(variable): index for index, variable in enumerate(trainable)}
    kernel_positions = [position[id(layer.kernel)] for layer in dense_layers(model)]
    non_trainable_values = [variable.value for variable in model.non_trainable_variables]

    def loss_of(trainable_values):
        logits, _ = model.stateless_call(
            trainable_values, non_trainable_values, x, training=False
        )
        return _mean_loss(y, logits)

    grads = jax.grad(loss_of)([variable.value for variable in trainable])
    return [np.asarray(grads[index]) for index in kernel_positions]
