"""Signal propagation at initialization: what an untrained network does to a probe batch.

Seed 002's argument is about variances, not accuracy: with ReLU, weights of variance 2/n
keep each layer's output variance where the previous layer left it, while 1/(3n) (the
±1/√n uniform rule) divides it by about 6 per layer, so twenty layers lose fifteen orders
of magnitude before training even starts. This module measures that on real data, for the
exact networks runs would train (``model.build_network`` with the registry's seeded
initializers, as ``trainer.train_group`` builds them: every initializer of a request is one
slice of one model), in a fraction of a second per network and without training.

Per hidden layer (a Dense layer or a convolution, named as a study's records name them) and
the output layer it reports

* the variance of its output (after the activation; the logits for the output layer) and of
  its pre-activation (what enters the activation: after the layer's normalization and its
  block's skip, where the network has them), over every sample, image position and unit of
  the probe batch;
* the variance of the backward signal: the gradient of each sample's own loss with respect to
  the layer's pre-activation (He et al.'s Δ). The loss is summed over the batch, so a row of
  the gradient is one sample's own backprop signal and the figure does not depend on the
  probe's size (behind a BatchNorm every sample also reaches the others' rows through the
  batch's mean and variance, as in a training step);
* the dead fraction (ReLU layers: units at 0 on every probe sample) and the constant fraction
  (units whose output is the same on every probe sample, whatever the activation), both as
  app/domain/units.py defines them for every page (a conv channel is a unit, its image
  positions samples).

The pass is the model's own graph with dropout off and normalization on the probe batch's
statistics (``_forward``); the tests check it against the model's own logits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from app.domain.spec import RunSetup
from app.domain.units import constant_fraction, dead_fraction
from worker.training.datasets import PreparedData, prepare_data
from worker.training.group_records import activated_layers
from worker.training.layers import loss, rows_variable, stacked
from worker.training.lsuv import rescale_group
from worker.training.model import build_network
from worker.training.probe import PROBE_BATCH_SIZE, activation_name, probe_indices
from worker.training.run_layers import batch_statistics


@dataclass
class LayerSignal:
    layer: str
    index: int  # 1 = first hidden layer; depth + 1 = the output layer
    units: int
    activation_variance: float
    preactivation_variance: float
    gradient_variance: float
    dead_fraction: float | None
    constant_fraction: float


@dataclass
class NetworkSignal:
    initializer: str
    initializer_params: dict[str, Any]
    samples: int
    layers: list[LayerSignal] = field(default_factory=list)
    seconds: float = 0.0


def load_data(dataset: str, data_dir: Path | None, *, train_samples: int | None = None, subset_seed: int = 0,
              download: bool = True) -> PreparedData:
    """The training subset a study with this ``dataset`` block trains on (no validation rows).

    Raises ``DatasetUnavailable`` when the data cannot be found (``download=False``: without
    trying Keras's downloader).
    """
    return prepare_data(dataset, train_samples, None, data_dir, subset_seed, download=download)


def measure(setups: Sequence[RunSetup], data: PreparedData, size: int = PROBE_BATCH_SIZE) -> list[NetworkSignal]:
    """The signal of each setup's network at initialization, on one probe batch.

    The setups share a seed (one request); the probe is ``probe.probe_indices`` for it, the
    samples the recorder measures a run with this seed on, and an initializer that rescales on
    data (LSUV) is rescaled first, as ``trainer.train_group`` does before epoch 0. Each
    network's ``seconds`` is its share of the time the whole group took.
    """
    started = time.perf_counter()
    keras.backend.clear_session(free_memory=False)
    # The same arrays as a training group's: the worker's rows variable is reused, not copied again
    # (a new empty slice each call missed that cache and stored the whole training set anew).
    model = build_network(setups, *rows_variable(data.images_train, data.images_val))
    rescale_group(model, len(data.y_train), list(setups))
    index = probe_indices(len(data.y_train), setups[0].seed, size)
    rows = np.repeat(index[:, None], len(setups), axis=1).astype(np.int32)  # (batch, runs): one probe for all
    tapped = activated_layers(model, setups[0].architecture())
    pre, post, grads = _forward_backward(model, [tap for _, _, tap in tapped], rows,
                                         np.asarray(data.y_train[index], np.int32))
    seconds = (time.perf_counter() - started) / len(setups)
    results = []
    for run, setup in enumerate(setups):
        result = NetworkSignal(setup.kernel.id, dict(setup.kernel.params), samples=int(len(index)), seconds=seconds)
        for position, (name, _, tap) in enumerate(tapped):
            units = int(post[position].shape[-1])
            z, a, g = (values[run].reshape(-1, units) for values in (pre[position], post[position], grads[position]))
            result.layers.append(LayerSignal(
                layer=name, index=position + 1, units=units,
                activation_variance=_variance(a), preactivation_variance=_variance(z),
                gradient_variance=_variance(g), dead_fraction=dead_fraction(a, activation_name(tap)),
                constant_fraction=constant_fraction(a),
            ))
        results.append(result)
    return results


def _variance(values: np.ndarray) -> float:
    # float64: a vanishing signal reaches 1e-30 and below, where float32 sums lose it.
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.var(np.asarray(values, dtype=np.float64)))


def _forward(model, taps: list, rows, offsets: list | None = None):
    """The logits (batch, runs, classes), and each tap's pre-activation and output, (runs, batch, ...).

    The model's own graph is run node by node (``Functional._run_through_graph``, what
    ``keras.Model.__call__`` does), with three changes: at a tap the pre-activation is kept
    and ``offsets[position]`` added to it (a weighted layer that applies its own activation is
    split into ``affine`` and ``activation``); dropout is off and normalization layers use the
    probe batch's statistics, as in the recorder's probe (``batch_statistics``: at initialization
    BatchNorm's moving statistics are 0 and 1, so inference mode would show an identity where
    training normalizes). It runs in a ``StatelessScope``: nothing it computes is kept.
    """
    position = {id(tap): number for number, tap in enumerate(taps)}
    pre, post = [None] * len(taps), [None] * len(taps)

    def operation_fn(operation):
        def call(*args, **kwargs):
            number = position.get(id(operation))
            if number is None:
                if isinstance(operation, keras.layers.Layer):
                    kwargs["training"] = False
                return operation(*args, **kwargs)
            affine = getattr(operation, "affine", None)  # StackedDense, StackedConv: the activation is inside
            # Inside a CNN's convolution stack the runs flow as a list (run_layers.py): measured
            # stacked, handed on in the form the graph expects.
            found = affine(args[0]) if affine is not None else args[0]
            z = stacked(found)
            if offsets is not None:
                z = keras.ops.add(z, offsets[number])
            pre[number] = z
            post[number] = operation.activation(z)
            return keras.ops.unstack(post[number], axis=0) if isinstance(found, (list, tuple)) else post[number]

        return call

    with keras.StatelessScope(), batch_statistics():
        logits = model._run_through_graph([keras.ops.convert_to_tensor(rows)], operation_fn)
    return logits, pre, post


def _summed_loss(y, logits):
    """Each run's loss summed over the batch, summed over runs: a row of the gradient is one
    sample's own backprop signal in its own run."""
    labels = keras.ops.broadcast_to(keras.ops.expand_dims(y, 1), logits.shape[:2])
    return keras.ops.sum(loss(labels, logits))


def _tap_output(output) -> tuple[int, tuple, str]:
    """A tap's (runs, one sample's shape, dtype), from its stacked output or its list of runs' outputs."""
    if isinstance(output, (list, tuple)):
        return len(output), tuple(output[0].shape[1:]), output[0].dtype
    return output.shape[0], tuple(output.shape[2:]), output.dtype


def _forward_backward(model, taps: list, rows: np.ndarray, y: np.ndarray):
    """(pre-activations, outputs, d(summed loss)/d(pre-activation)) per tap, as numpy arrays.

    The backward signal comes from zero tensors added to each pre-activation: the gradient with
    respect to such a tensor is the gradient with respect to the pre-activation, and the model
    needs no change. A pre-activation has its tap's output shape, (runs, batch, ...).
    """
    offsets = [keras.ops.zeros((runs, len(rows), *sample), dtype=dtype)
               for runs, sample, dtype in (_tap_output(tap.output) for tap in taps)]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        y = tf.convert_to_tensor(y)
        with tf.GradientTape() as tape:
            tape.watch(offsets)
            logits, pre, post = _forward(model, taps, rows, offsets)
            total = _summed_loss(y, logits)
        grads = tape.gradient(total, offsets)
    elif backend == "jax":
        import jax

        def total_loss(offsets):
            logits, pre, post = _forward(model, taps, rows, offsets)
            return _summed_loss(y, logits), (pre, post)

        (_, (pre, post)), grads = jax.value_and_grad(total_loss, has_aux=True)(offsets)
    else:
        raise NotImplementedError(
            f"the signal probe supports the tensorflow and jax backends, not '{backend}'; "
            "set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax"
        )
    as_numpy = keras.ops.convert_to_numpy
    return [as_numpy(t) for t in pre], [as_numpy(t) for t in post], [as_numpy(t) for t in grads]
