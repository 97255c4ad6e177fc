"""LSUV, layer-sequential unit variance (Mishkin & Matas 2015, cited in seed 000).

Start from orthogonal weights (the ``lsuv`` registry entry builds them), then, from the
input side, divide each layer's kernel by the std of that layer's pre-activations
x·W + b (a convolution's output plus its bias, over every image position) on a batch of
training data, until their variance is 1 ± ``TOLERANCE`` or
``MAX_ITERATIONS`` rescalings are spent. The paper measures the variance of each layer's
output before its nonlinearity (Caffe's separate activation layers), and so does this.
Only the kernels of the layers whose initializer is ``lsuv`` are touched: with another
output initializer, the output layer keeps its own scheme. Every layer with a kernel takes
part, in the order the network applies them (convolutions, Dense layers, a residual block's
skip projection after its block); a layer followed by a normalization is rescaled all the
same (the normalization then divides by that scale again: LSUV changes nothing downstream
of it, as in the paper's BatchNorm experiments).

It needs data, so it is a step after the model is built and before epoch 0 is recorded
(``trainer.train_group``): what is recorded at epoch 0 is already rescaled. The batch is
drawn from the run's training data with the run's seed, and each run of a group is rescaled
on its own batch, slice by slice, exactly as alone. The rule's constants are the registry's.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from app.domain.registry import LSUV_BATCH as BATCH_SIZE, LSUV_ITERATIONS as MAX_ITERATIONS, LSUV_TOLERANCE as TOLERANCE
from app.domain.spec import RunSetup
from worker.training.layers import stacked
from worker.training.model import weighted_layers
from worker.training.run_layers import batch_statistics

_STREAM = 0x15_0F  # keeps the LSUV batch apart from the gradient probe's (probe.probe_indices)
_FLAT = 1e-12  # a layer whose pre-activations do not vary (dead inputs) cannot be rescaled to 1


def lsuv_layers(setup: RunSetup) -> list[bool]:
    """Per layer with a kernel of a run (app/domain/architecture.py's order, the output last): is it rescaled?"""
    return [setup.kernel_for(layer).rescale_on_data for layer in setup.architecture().weighted()]


def lsuv_indices(train_count: int, seed: int, size: int = BATCH_SIZE) -> np.ndarray:
    """The training rows a run's LSUV measures on (repeatable per seed)."""
    rng = np.random.default_rng([int(seed), _STREAM])
    return np.sort(rng.choice(train_count, min(size, train_count), replace=False))


def rescale_group(model, train_count: int, setups: list[RunSetup]) -> list[list[float | None]]:
    """LSUV on a group's model: run k's slices on run k's own batch (column k of the row indices).

    Returns, per run, each layer's final variance (None: untouched).
    """
    per_run = [lsuv_layers(setup) for setup in setups]
    if not any(any(flags) for flags in per_run):
        return [[None] * len(flags) for flags in per_run]
    rows = np.stack([lsuv_indices(train_count, setup.seed) for setup in setups], axis=1).astype(np.int32)
    chosen = [np.array(flags) for flags in zip(*per_run)]
    final = _rescale(model, rows, weighted_layers(model), chosen)
    return [[float(final[layer][run]) if per_run[run][layer] else None for layer in range(len(final))]
            for run in range(len(setups))]


def _rescale(model, feed, layers: list, chosen: list[np.ndarray]) -> list[np.ndarray]:
    """The LSUV loop, layer by layer from the input; ``chosen[layer][run]`` says which slices move."""
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    final = []
    for layer, move in zip(layers, chosen):
        if not move.any():
            final.append(np.full(move.shape, np.nan))
            continue
        # The layers before this one are final now, so the layer's input is measured once.
        # BatchNorm before it normalizes on this batch, as in training (run_layers.batch_statistics).
        with batch_statistics():
            layer_input = keras.Model(inputs, layer.input)(feed, training=False)
        done = ~move
        for _ in range(MAX_ITERATIONS):
            variance = _variances(layer, layer_input)
            done = done | (np.abs(variance - 1.0) < TOLERANCE) | ~(variance > _FLAT) | ~np.isfinite(variance)
            if done.all():
                break
            factor = np.where(done, 1.0, 1.0 / np.sqrt(np.where(done, 1.0, variance))).astype(np.float32)
            per_run = factor.reshape((-1,) + (1,) * (len(layer.kernel.shape) - 1))
            layer.kernel.assign(ops.multiply(layer.kernel, per_run))
        final.append(_variances(layer, layer_input))
    return final


def _variances(layer, layer_input) -> np.ndarray:
    """Variance of the pre-activations over samples, positions and units, one per run slice."""
    pre = stacked(layer.affine(layer_input))
    return np.asarray(ops.convert_to_numpy(ops.var(pre, axis=tuple(range(1, len(pre.shape))))), dtype=np.float64)
