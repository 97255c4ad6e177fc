"""Keras layers that train several runs in one model (a lone run is a group of one).

Backend-neutral Keras 3 only (``keras.ops`` / ``keras.random``), so the same code runs on
TensorFlow and JAX. Imported by the worker only: it loads Keras at import time.

* ``IndexedRows`` keeps a data set's rows inside the model (as bytes when the images
  are bytes / 255) and turns a batch of row indices into a batch of rows. Each run can
  then visit the samples in its own explicit order (``trainer.epoch_order``) with the gather inside the compiled step, where
  slicing permuted copies on the host cost about 0.4 s an epoch on full MNIST.
* ``StackedDense`` is K Dense layers of one shape, one per run: a (K, in, out) kernel
  and one batched matmul, each slice drawn by that run's own initializer with the fans
  of the slice, (in, out), exactly as the run's own ``Dense`` would draw it.
* ``RunDropout`` draws run k's mask from run k's own seed stream, the mask that run's
  own ``Dropout`` layer would draw, so masks are independent across runs.
* ``RunMetrics`` sums each run's loss and correct predictions over an epoch, so each
  run's loss and accuracy are per-sample means, as a single-run Keras model reports them.

Between layers the runs travel as one (K, B, ...) tensor, or, through a CNN's convolution stack,
as a list of K (B, ...) tensors (worker/training/run_layers.py says why); the per-run layers take
either form and give back the form they got (``per_run``, ``same_form``).
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
from keras import ops

from worker.training.datasets import as_float


def loss(y_true, logits):
    """Per-sample cross-entropy of integer labels against the output layer's logits.

    The output layer gives logits and every loss is computed ``from_logits``: the softmax
    then lives inside the loss, as seed 001's ``Dense(10, activation="softmax")`` does on
    TensorFlow, where Keras quietly takes the logits back from the softmax. Other backends
    cannot do that trick and would clip probabilities instead, which changes when a run
    diverges; explicit logits give the same numbers on every backend.
    """
    return keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)


_ROWS: list[tuple[np.ndarray, np.ndarray, Any, bool]] = []
_ROWS_KEPT = 2
_PIXEL_LEVELS = 255
_CHUNK_ROWS = 1024


def rows_variable(x_train: np.ndarray, x_val: np.ndarray) -> tuple[Any, bool]:
    """One non-trainable variable holding the training rows, then the validation rows.

    Returns (variable, as_bytes). The rows are a data set's uint8 images (``PreparedData.images_*``:
    the model's values are bytes / 255) or float32 rows. Images that are bytes / 255 are
    stored as those bytes, a quarter of the memory (55 MB for MNIST), and ``IndexedRows``
    divides by 255 again after the gather, which gives back the same float32 values; float
    rows are checked for being such bytes first. Kept per process for the last two data
    sets: a worker trains many runs on the same arrays (``prepare_data`` caches them).
    """
    for train, val, variable, as_bytes in _ROWS:
        if train is x_train and val is x_val:
            return variable, as_bytes
    if x_train.dtype == np.uint8 and x_val.dtype == np.uint8 and _division_is_exact():
        rows, as_bytes = np.concatenate([x_train, x_val]), True
    else:
        floats = [as_float(part) for part in (x_train, x_val)]
        pixels = [_as_bytes(part) for part in floats]
        as_bytes = all(part is not None for part in pixels) and _division_is_exact()
        rows = np.concatenate(pixels if as_bytes else floats)
    variable = keras.Variable(rows, trainable=False, name="rows", dtype="uint8" if as_bytes else "float32")
    _ROWS.insert(0, (x_train, x_val, variable, as_bytes))
    del _ROWS[_ROWS_KEPT:]
    return variable, as_bytes


def _byte_levels() -> np.ndarray:
    return np.arange(_PIXEL_LEVELS + 1, dtype=np.float32) / np.float32(_PIXEL_LEVELS)


def _as_bytes(values: np.ndarray) -> np.ndarray | None:
    """``values`` as the bytes b with b / 255 == values exactly (float32); None if there are none."""
    if values.dtype != np.float32 or values.ndim != 2:
        return None
    levels = _byte_levels()
    result = np.empty(values.shape, dtype=np.uint8)
    # Small chunks stay in the CPU cache: no 200 MB temporaries, about 0.1 s for MNIST.
    for start in range(0, len(values), _CHUNK_ROWS):
        chunk = values[start:start + _CHUNK_ROWS]
        with np.errstate(invalid="ignore"):
            chunk_bytes = np.clip(np.rint(chunk * np.float32(_PIXEL_LEVELS)), 0, _PIXEL_LEVELS).astype(np.uint8)
        if not np.array_equal(levels[chunk_bytes], chunk):  # also false for NaN or out of range
            return None
        result[start:start + _CHUNK_ROWS] = chunk_bytes
    return result


def _division_is_exact() -> bool:
    """Does this backend's byte → float conversion give numpy's values for all 256 bytes?"""
    converted = ops.convert_to_numpy(_bytes_to_float(np.arange(_PIXEL_LEVELS + 1, dtype=np.uint8)))
    return bool(np.array_equal(converted, _byte_levels()))


def _bytes_to_float(values):
    return ops.divide(ops.cast(values, "float32"), float(_PIXEL_LEVELS))


class IndexedRows(keras.layers.Layer):
    """Row indices in, rows out: (B,) → (B, D), or one column per run (B, K) → (K, B, D)."""

    def __init__(self, rows, as_bytes: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.rows = rows  # tracked as a non-trainable variable of this layer
        self.as_bytes = as_bytes

    def call(self, index):
        if len(index.shape) == 2:
            index = ops.transpose(index)
        rows = ops.take(self.rows, index, axis=0)
        return _bytes_to_float(rows) if self.as_bytes else rows

    def compute_output_spec(self, index):
        shape = (index.shape[1], index.shape[0]) if len(index.shape) == 2 else (index.shape[0],)
        return keras.KerasTensor((*shape, self.rows.shape[1]), dtype="float32")


def per_run(inputs) -> tuple[list, bool]:
    """The runs' tensors one by one, and whether they came as a list (else as one (K, B, ...) tensor).

    ``ops.unstack``, not ``inputs[k]``: the gradient of K strided slices is K full-size zero
    tensors with one slice filled each (O(K²) memory traffic: 10 % of seed 000's fused step).
    """
    if isinstance(inputs, (list, tuple)):
        return list(inputs), True
    return ops.unstack(inputs, axis=0), False


def same_form(outputs: list, listed: bool):
    """Per-run outputs in the form their inputs came in (``per_run``)."""
    return list(outputs) if listed else ops.stack(outputs)


def stacked(values):
    """One (K, B, ...) tensor, whichever form ``values`` has (for readers of every run at once)."""
    return ops.stack(list(values)) if isinstance(values, (list, tuple)) else values


def stacked_initializer(initializers: Sequence[Any], slice_shape: tuple[int, ...]):
    def initialize(shape, dtype=None):
        return ops.stack([initializer(slice_shape, dtype=dtype) for initializer in initializers])

    return initialize


@ops.custom_gradient
def add_run_bias(outputs, bias):
    """(K, B, units) + each run's (units,) bias, with each run's bias gradient summed as alone.

    The forward add is one broadcast (element-wise, so every sum is the run's own). Its
    automatic gradient would sum the (K, B, units) upstream over the batch in one reduction,
    in an order that depends on K (the first run's output bias gradient 6e-8 off its value
    alone, which a BatchNorm CNN carried past 1e-4 in two epochs); here each run's (B, units)
    slice is summed on its own, the reduction the run alone does. Adding run by run gave the
    same numbers but copied the activations into a stack forwards and backwards: seed 001's
    group of 8 trains 1.17x faster without those copies (bench/RESULTS.md).
    """
    summed = ops.add(outputs, ops.expand_dims(bias, axis=1))

    def gradient(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        per_run = [ops.sum(run_upstream, axis=0) for run_upstream in ops.unstack(upstream, axis=0)]
        return upstream, ops.stack(per_run)

    return summed, gradient


class StackedDense(keras.layers.Layer):
    """K independent Dense layers of one shape: (K, B, in) → (K, B, units)."""

    def __init__(self, units: int, activation: str, kernel_initializers: Sequence[Any],
                 bias_initializers: Sequence[Any] | None, **kwargs):
        super().__init__(**kwargs)
        if bias_initializers is not None and len(kernel_initializers) != len(bias_initializers):
            raise ValueError("one kernel and one bias initializer per run")
        self.units = int(units)
        self.runs = len(kernel_initializers)
        self.activation = keras.activations.get(activation)
        self.kernel_initializers = list(kernel_initializers)
        self.bias_initializers = None if bias_initializers is None else list(bias_initializers)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(self.runs, fan_in, self.units),
            initializer=stacked_initializer(self.kernel_initializers, (fan_in, self.units)),
        )
        self.bias = None  # none before a BatchNorm (app/domain/architecture.py)
        if self.bias_initializers is not None:
            self.bias = self.add_weight(
                name="bias", shape=(self.runs, self.units),
                initializer=stacked_initializer(self.bias_initializers, (self.units,)),
            )

    def affine(self, inputs):
        """x·W + b, before the activation (what LSUV measures)."""
        outputs = ops.matmul(inputs, self.kernel)
        if self.bias is None:
            return outputs
        # A tensor, not the variable: tf.custom_gradient wants variables read inside it declared.
        return add_run_bias(outputs, ops.copy(self.bias))

    def call(self, inputs):
        # The order of keras.layers.Dense: matmul, add the bias, activation.
        return self.activation(self.affine(inputs))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)


class RunDropout(keras.layers.Layer):
    """Dropout on (K, B, ...) or a list of runs' tensors, with one seed stream per run."""

    def __init__(self, rate: float, seeds: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed_generators = [keras.random.SeedGenerator(int(seed)) for seed in seeds]

    def call(self, inputs, training=False):
        if not training or self.rate <= 0:
            return inputs
        runs, listed = per_run(inputs)
        return same_form([keras.random.dropout(run_input, self.rate, seed=generator)
                          for run_input, generator in zip(runs, self.seed_generators)], listed)

    def compute_output_shape(self, input_shape):
        return input_shape


class RunMetrics(keras.metrics.Metric):
    """Per-run loss and accuracy of a (B, K, classes) output against (B, K) labels.

    ``result()`` holds ``run_loss`` and ``run_accuracy``, arrays of K; Keras prefixes
    them with ``val_`` for the validation pass.
    """

    def __init__(self, runs: int, name: str = "runs", **kwargs):
        super().__init__(name=name, **kwargs)
        self.loss_sum = self.add_variable(shape=(runs,), initializer="zeros", name="loss_sum")
        self.correct = self.add_variable(shape=(runs,), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        losses = loss(y_true, y_pred)
        self.loss_sum.assign_add(ops.sum(losses, axis=0))
        hits = ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true)
        self.correct.assign_add(ops.sum(ops.cast(hits, self.dtype), axis=0))
        self.count.assign_add(ops.cast(ops.shape(y_true)[0], self.dtype))

    def result(self):
        count = ops.maximum(self.count, 1.0)
        return {"run_loss": self.loss_sum / count, "run_accuracy": self.correct / count}

    def reset_state(self):
        for variable in self.variables:
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))


def summed_run_losses(y_true, y_pred):
    """Per sample, the sum over runs of each run's cross-entropy.

    Keras averages this over the batch, so the total is the sum of the runs' own mean
    losses and each run's slice gets exactly the gradient of its own loss (a mean over
    runs would scale every gradient by 1/K, which plain SGD would feel).
    """
    return ops.sum(loss(ops.cast(y_true, "int32"), y_pred), axis=-1)
