"""LSUV, layer-sequential unit variance (Mishkin & Matas 2015, cited in seed 000).

Start from orthogonal weights (the ``lsuv`` registry entry builds them), then, from the
input side, divide each layer's kernel by the std of that layer's pre-activations
x·W + b on a batch of training data, until their variance is 1 ± ``TOLERANCE`` or
``MAX_ITERATIONS`` rescalings are spent. The paper measures the variance of each layer's
output before its nonlinearity (Caffe's separate activation layers), and so does this.
Only the kernels of the layers whose initializer is ``lsuv`` are touched: with another
output initializer, the output layer keeps its own scheme.

It needs data, so it is a step after the model is built and before epoch 0 is recorded
(``trainer.train_run``, ``fused.train_group``): what is recorded at epoch 0 is already
rescaled. The batch is drawn from the run's training data with the run's seed, and a run
in a fused group is rescaled on its own batch, slice by slice, exactly as alone.

Imported by the worker; Keras is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BATCH_SIZE = 256
TOLERANCE = 0.1
MAX_ITERATIONS = 10
_STREAM = 0x15_0F  # keeps the LSUV batch apart from the gradient probe's (trainer.probe_indices)
_FLAT = 1e-12  # a layer whose pre-activations do not vary (dead inputs) cannot be rescaled to 1


def lsuv_layers(config) -> list[bool]:
    """Per Dense layer of a run (hidden first, output last): is its kernel rescaled?"""
    from worker.training.initializers import REGISTRY

    hidden = REGISTRY[config.initializer].rescale_on_data
    output = REGISTRY[config.output_initializer or config.initializer].rescale_on_data
    return [hidden] * len(config.hidden_units) + [output]


def lsuv_indices(train_count: int, seed: int, size: int = BATCH_SIZE) -> np.ndarray:
    """The training rows a run's LSUV measures on (repeatable per seed)."""
    rng = np.random.default_rng([int(seed), _STREAM])
    return np.sort(rng.choice(train_count, min(size, train_count), replace=False))


def rescale_run(network, x_train: np.ndarray, config) -> list[float | None]:
    """LSUV on one run's MLP (``model.build_mlp``); returns each layer's final variance (None: untouched)."""
    from worker.training.model import dense_layers

    selected = lsuv_layers(config)
    if not any(selected):
        return [None] * len(selected)
    x = x_train[lsuv_indices(len(x_train), int(config.seed))]
    chosen = [np.array([flag]) for flag in selected]
    final = _rescale(network, x, dense_layers(network), chosen, stacked=False)
    return [float(row[0]) if flag else None for row, flag in zip(final, selected)]


def rescale_group(model, train_count: int, configs) -> list[list[float | None]]:
    """LSUV on a fused model: run k's slices on run k's own batch (column k of the row indices).

    Returns, per run, each layer's final variance (None: untouched).
    """
    from worker.training.model import dense_layers

    per_run = [lsuv_layers(config) for config in configs]
    if not any(any(flags) for flags in per_run):
        return [[None] * len(flags) for flags in per_run]
    rows = np.stack([lsuv_indices(train_count, int(config.seed)) for config in configs], axis=1).astype(np.int32)
    chosen = [np.array(flags) for flags in zip(*per_run)]
    final = _rescale(model, rows, dense_layers(model), chosen, stacked=True)
    return [[float(final[layer][run]) if per_run[run][layer] else None for layer in range(len(final))]
            for run in range(len(configs))]


def _rescale(model, feed, layers: list, chosen: list[np.ndarray], stacked: bool) -> list[np.ndarray]:
    """The LSUV loop, layer by layer from the input; ``chosen[layer][run]`` says which slices move."""
    import keras

    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    final = []
    for layer, move in zip(layers, chosen):
        if not move.any():
            final.append(np.full(move.shape, np.nan))
            continue
        # The layers before this one are final now, so the layer's input is measured once.
        layer_input = keras.Model(inputs, layer.input)(feed, training=False)
        done = ~move
        for _ in range(MAX_ITERATIONS):
            variance = _variances(layer, layer_input, stacked)
            done = done | (np.abs(variance - 1.0) < TOLERANCE) | ~(variance > _FLAT) | ~np.isfinite(variance)
            if done.all():
                break
            factor = np.where(done, 1.0, 1.0 / np.sqrt(np.where(done, 1.0, variance)))
            _scale_kernel(layer, factor, stacked)
        final.append(_variances(layer, layer_input, stacked))
    return final


def _variances(layer, layer_input, stacked: bool) -> np.ndarray:
    """Variance of the pre-activations x·W + b over samples and units, one per run slice."""
    from keras import ops

    bias = ops.expand_dims(layer.bias, 1) if stacked else layer.bias
    pre = ops.add(ops.matmul(layer_input, layer.kernel), bias)
    variance = ops.var(pre, axis=(1, 2)) if stacked else ops.reshape(ops.var(pre), (1,))
    return np.asarray(ops.convert_to_numpy(variance), dtype=np.float64)


def _scale_kernel(layer, factor: np.ndarray, stacked: bool) -> None:
    from keras import ops

    scale: Any = factor.astype(np.float32)
    scale = scale[:, None, None] if stacked else scale[0]
    layer.kernel.assign(ops.multiply(layer.kernel, scale))
