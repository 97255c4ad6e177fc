"""Signal propagation at initialization: what an untrained network does to a probe batch.

Seed 002's argument is about variances, not accuracy: with ReLU, weights of variance 2/n
keep each layer's output variance where the previous layer left it, while 1/(3n) (the
±1/√n uniform rule) divides it by about 6 per layer, so twenty layers lose fifteen orders
of magnitude before training even starts. This module measures that on real data, for the
exact network a run would train (``build_mlp`` with the registry's seeded initializers, as
``trainer.train_run`` builds it), in a fraction of a second per network and without training.

Per Dense layer it reports

* the variance of its output (after the activation; the logits for the output layer) and of
  its pre-activation, over every sample and unit of the probe batch;
* the variance of the backward signal: the gradient of each sample's own loss with respect to
  the layer's pre-activation (He et al.'s Δ). The loss is summed over the batch, so a row of
  the gradient is one sample's own backprop signal and the figure does not depend on the
  probe's size;
* the dead fraction: units whose output is the same for every probe sample, so they carry
  nothing about the input (for ReLU, units that never fire; all units under ``zeros``).

The forward pass is repeated layer by layer with the layers' own kernel, bias and activation
(dropout is off at inference, as in the recorder's probe) and checked against the model's
own logits by the tests. The backward signal comes from zero tensors added to each
pre-activation: the gradient with respect to such a tensor is the gradient with respect to
the pre-activation, which needs no change to the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worker.training.datasets import DATASETS, PreparedData, prepare_data
from worker.training.model import build_mlp, dense_layer_names, dense_layers, loss
from worker.training.trainer import PROBE_BATCH_SIZE, RunConfig, initializer_factories, probe_batch


@dataclass
class LayerSignal:
    layer: str
    index: int  # 1 = first hidden layer; depth + 1 = the output layer
    units: int
    activation_variance: float
    preactivation_variance: float
    gradient_variance: float
    dead_fraction: float


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
    trying Keras's downloader, as the API does).
    """
    return prepare_data(dataset, train_samples, None, data_dir, subset_seed, download=download)


def measure(config: RunConfig, data: PreparedData, size: int = PROBE_BATCH_SIZE) -> NetworkSignal:
    """The signal of ``config``'s network at initialization on the run's own probe batch.

    The probe is ``trainer.probe_batch``, the samples the recorder measures gradients on for
    this seed; an initializer that rescales on data (LSUV) is rescaled first, as
    ``trainer.train_run`` does before epoch 0.
    """
    import time

    from worker.training.lsuv import rescale_run

    config.validate()
    started = time.perf_counter()
    info = DATASETS[config.dataset]
    kernel, bias, output = initializer_factories(config)
    model = build_mlp(
        input_dim=info.input_dim, num_classes=info.num_classes, hidden_units=list(config.hidden_units),
        activation=config.activation, dropout=float(config.dropout), seed=int(config.seed),
        kernel_initializer=kernel, bias_initializer=bias, output_initializer=output,
    )
    rescale_run(model, data.x_train, config)
    x, y = probe_batch(data, int(config.seed), size)
    layers = dense_layers(model)
    pre, post, grads = _forward_backward(layers, np.asarray(x, np.float32), np.asarray(y, np.int32))
    names = dense_layer_names(len(config.hidden_units))
    result = NetworkSignal(config.initializer, dict(config.initializer_params), samples=int(len(y)))
    for index, (name, z, a, g) in enumerate(zip(names, pre, post, grads), start=1):
        result.layers.append(LayerSignal(
            layer=name, index=index, units=int(a.shape[1]),
            activation_variance=_variance(a), preactivation_variance=_variance(z),
            gradient_variance=_variance(g), dead_fraction=dead_fraction(a),
        ))
    result.seconds = time.perf_counter() - started
    return result


def dead_fraction(outputs: np.ndarray) -> float:
    """Share of units (columns) whose output is identical on every sample (rows) of the batch.

    NaN when the layer overflowed (an infinite or NaN output): such a layer carries no signal
    at all, and calling its units "dead" would blame the wrong thing.
    """
    outputs = np.asarray(outputs)
    if outputs.shape[0] < 2:
        raise ValueError("a dead unit is one that never changes, which needs at least two samples")
    if not np.all(np.isfinite(outputs)):
        return float("nan")
    return float(np.mean(np.all(outputs == outputs[:1], axis=0)))


def _variance(values: np.ndarray) -> float:
    # float64: a vanishing signal reaches 1e-30 and below, where float32 sums lose it.
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.var(np.asarray(values, dtype=np.float64)))


def _forward(layers, weights, x, offsets):
    """Logits, pre-activations and outputs of every Dense layer; ``offsets`` are added to the pre-activations."""
    import keras

    hidden, pre, post = x, [], []
    for layer, (kernel, bias), offset in zip(layers, weights, offsets):
        z = keras.ops.matmul(hidden, kernel) + offset
        if bias is not None:
            z = z + bias
        hidden = layer.activation(z)
        pre.append(z)
        post.append(hidden)
    return hidden, pre, post


def _forward_backward(layers, x: np.ndarray, y: np.ndarray):
    """(pre-activations, outputs, d(summed loss)/d(pre-activation)) per layer, as numpy arrays."""
    import keras

    weights = [(keras.ops.convert_to_tensor(layer.kernel),
                None if layer.bias is None else keras.ops.convert_to_tensor(layer.bias)) for layer in layers]
    offsets = [keras.ops.zeros((x.shape[0], int(layer.kernel.shape[1])), dtype=x.dtype) for layer in layers]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
        with tf.GradientTape() as tape:
            tape.watch(offsets)
            logits, pre, post = _forward(layers, weights, x, offsets)
            total = keras.ops.sum(loss(y, logits))
        grads = tape.gradient(total, offsets)
    elif backend == "jax":
        import jax

        def total_loss(offsets):
            logits, pre, post = _forward(layers, weights, x, offsets)
            return keras.ops.sum(loss(y, logits)), (pre, post)

        (_, (pre, post)), grads = jax.value_and_grad(total_loss, has_aux=True)(offsets)
    else:
        raise NotImplementedError(
            f"the signal probe supports the tensorflow and jax backends, not '{backend}'; "
            "set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax"
        )
    as_numpy = keras.ops.convert_to_numpy
    return [as_numpy(t) for t in pre], [as_numpy(t) for t in post], [as_numpy(t) for t in grads]
