"""The probe batch: fixed training samples each run is measured on, and what is measured there.

The recorder measures every run at init and after every epoch on the same probe samples
(``probe_indices``, repeatable per seed): the loss gradient of each Dense kernel
(``kernel_gradients``) and every Dense layer's output (``layer_outputs``), from which the
unit diagnostics of app/domain/units.py are computed.

Keras 3 has no backend-neutral gradient API, so this is the one place that branches on
the backend. The probe runs with ``training=False``: dropout off gives the gradient the
initialization itself produces, and it keeps the dropout layers' seed generators
untouched, so recording a run never changes how that run trains. Inside
``batch_statistics`` BatchNorm still normalizes with the probe batch's own statistics, as in
the training step whose gradient the probe stands for, and leaves its moving statistics alone.
"""

from __future__ import annotations

import numpy as np

from worker.training.layers import loss, stacked
from worker.training.model import weighted_layers
from worker.training.run_layers import batch_statistics

PROBE_BATCH_SIZE = 256


def probe_indices(count: int, seed: int, size: int = PROBE_BATCH_SIZE) -> np.ndarray:
    """The training samples a run with this seed is measured on (repeatable per seed)."""
    return np.sort(np.random.default_rng(seed).choice(count, min(size, count), replace=False))


def activation_name(layer) -> str:
    """The Keras activation's own name ("relu", "tanh", ..., "linear")."""
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def output_model(model, layers):
    """A model from ``model``'s inputs to each of ``layers``' outputs (built once per model)."""
    import keras

    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # the structure it was built with
    return keras.Model(inputs, [layer.output for layer in layers])


def layer_outputs(taps, x) -> list[np.ndarray]:
    """Each tapped layer's output on ``x`` with dropout off (it never touches a seed stream), BatchNorm on the batch's statistics."""
    with batch_statistics():
        outputs = taps(x, training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    # A layer inside a CNN's convolution stack gives a list of runs' tensors (run_layers.py): stacked here.
    return [np.asarray(stacked(output)) for output in outputs]


def kernel_gradients(model, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """d(mean sparse categorical cross-entropy)/d(kernel), one array per layer with a kernel, in order."""
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

    kernels = [layer.kernel for layer in weighted_layers(model)]
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y)
    with tf.GradientTape() as tape, batch_statistics():
        loss = _mean_loss(y, model(x, training=False))
    return [np.asarray(grad) for grad in tape.gradient(loss, kernels)]


def _jax_gradients(model, x, y) -> list[np.ndarray]:
    import jax

    trainable = model.trainable_variables
    position = {id(variable): index for index, variable in enumerate(trainable)}
    kernel_positions = [position[id(layer.kernel)] for layer in weighted_layers(model)]
    non_trainable_values = [variable.value for variable in model.non_trainable_variables]

    def loss_of(trainable_values):
        logits, _ = model.stateless_call(
            trainable_values, non_trainable_values, x, training=False
        )
        return _mean_loss(y, logits)

    with batch_statistics():  # read while jax traces loss_of
        grads = jax.grad(loss_of)([variable.value for variable in trainable])
    return [np.asarray(grads[index]) for index in kernel_positions]
