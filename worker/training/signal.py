"""Signal propagation at initialization: what an untrained network does to a probe batch.

Seed 002's argument is about variances, not accuracy: with ReLU, weights of variance 2/n
keep each layer's output variance where the previous layer left it, while 1/(3n) (the
±1/√n uniform rule) divides it by about 6 per layer, so twenty layers lose fifteen orders
of magnitude before training even starts. This module measures that on real data, for the
exact networks runs would train (``model.build_network`` with the registry's seeded
initializers, as ``trainer.train_group`` builds them: every initializer of a request is one
slice of one model), in a fraction of a second per network and without training.

Per Dense layer it reports

* the variance of its output (after the activation; the logits for the output layer) and of
  its pre-activation, over every sample and unit of the probe batch;
* the variance of the backward signal: the gradient of each sample's own loss with respect to
  the layer's pre-activation (He et al.'s Δ). The loss is summed over the batch, so a row of
  the gradient is one sample's own backprop signal and the figure does not depend on the
  probe's size;
* the dead fraction (ReLU layers: units at 0 on every probe sample) and the constant fraction
  (units whose output is the same on every probe sample, whatever the activation), both as
  app/domain/units.py defines them for every page.

The forward pass is repeated layer by layer with the layers' own kernel, bias and activation
(dropout is off at inference, as in the recorder's probe) and checked against the model's
own logits by the tests. The backward signal comes from zero tensors added to each
pre-activation: the gradient with respect to such a tensor is the gradient with respect to
the pre-activation, which needs no change to the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from app.domain.layers import dense_layer_names
from app.domain.spec import RunSetup
from app.domain.units import constant_fraction, dead_fraction
from worker.training.datasets import PreparedData, prepare_data
from worker.training.layers import loss, rows_variable
from worker.training.lsuv import rescale_group
from worker.training.model import build_network, dense_layers
from worker.training.probe import PROBE_BATCH_SIZE, activation_name, probe_indices


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
    model = build_network(setups, *rows_variable(data.x_train, data.x_train[:0]))
    rescale_group(model, len(data.y_train), list(setups))
    index = probe_indices(len(data.y_train), setups[0].seed, size)
    x, y = np.asarray(data.x_train[index], np.float32), np.asarray(data.y_train[index], np.int32)
    layers = dense_layers(model)
    pre, post, grads = _forward_backward(layers, x, y)
    names = dense_layer_names(len(setups[0].hidden_units))
    seconds = (time.perf_counter() - started) / len(setups)
    results = []
    for run, setup in enumerate(setups):
        result = NetworkSignal(setup.kernel.id, dict(setup.kernel.params), samples=int(len(y)), seconds=seconds)
        for position, (name, layer) in enumerate(zip(names, layers)):
            z, a, g = pre[position][run], post[position][run], grads[position][run]
            result.layers.append(LayerSignal(
                layer=name, index=position + 1, units=int(a.shape[1]),
                activation_variance=_variance(a), preactivation_variance=_variance(z),
                gradient_variance=_variance(g), dead_fraction=dead_fraction(a, activation_name(layer)),
                constant_fraction=constant_fraction(a),
            ))
        results.append(result)
    return results


def _variance(values: np.ndarray) -> float:
    # float64: a vanishing signal reaches 1e-30 and below, where float32 sums lose it.
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.var(np.asarray(values, dtype=np.float64)))


def _forward(layers, weights, x, offsets):
    """Logits, pre-activations and outputs of every layer, (runs, batch, units) each;
    ``offsets`` are added to the pre-activations."""
    hidden = keras.ops.broadcast_to(x, (int(weights[0][0].shape[0]), *x.shape))
    pre, post = [], []
    for layer, (kernel, bias), offset in zip(layers, weights, offsets):
        z = keras.ops.matmul(hidden, kernel) + keras.ops.expand_dims(bias, 1) + offset
        hidden = layer.activation(z)
        pre.append(z)
        post.append(hidden)
    return hidden, pre, post


def _summed_loss(y, logits):
    """Each run's loss summed over the batch, summed over runs: a row of the gradient is one
    sample's own backprop signal in its own run."""
    labels = keras.ops.broadcast_to(y, logits.shape[:2])
    return keras.ops.sum(loss(labels, logits))


def _forward_backward(layers, x: np.ndarray, y: np.ndarray):
    """(pre-activations, outputs, d(summed loss)/d(pre-activation)) per layer, as numpy arrays."""
    weights = [(keras.ops.convert_to_tensor(layer.kernel), keras.ops.convert_to_tensor(layer.bias)) for layer in layers]
    runs, samples = int(weights[0][0].shape[0]), x.shape[0]
    offsets = [keras.ops.zeros((runs, samples, int(layer.kernel.shape[-1])), dtype=x.dtype) for layer in layers]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
        with tf.GradientTape() as tape:
            tape.watch(offsets)
            logits, pre, post = _forward(layers, weights, x, offsets)
            total = _summed_loss(y, logits)
        grads = tape.gradient(total, offsets)
    elif backend == "jax":
        import jax

        def total_loss(offsets):
            logits, pre, post = _forward(layers, weights, x, offsets)
            return _summed_loss(y, logits), (pre, post)

        (_, (pre, post)), grads = jax.value_and_grad(total_loss, has_aux=True)(offsets)
    else:
        raise NotImplementedError(
            f"the signal probe supports the tensorflow and jax backends, not '{backend}'; "
            "set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax"
        )
    as_numpy = keras.ops.convert_to_numpy
    return [as_numpy(t) for t in pre], [as_numpy(t) for t in post], [as_numpy(t) for t in grads]
