"""The network a group of runs trains: app/domain/architecture.py's layers, one slice per run.

Every run trains in a group (a lone run is a group of one): one Keras model whose layers
hold one slice per run, ``StackedDense`` kernels of shape (runs, in, out) and one batched
matmul per layer, ``StackedConv`` kernels of shape (runs, kh, kw, c_in, c_out). Each slice is
drawn by its own run's initializer with its own seed (app/domain/layers.py decides which seed
each layer draws from), so slice k holds exactly the weights run k's own network would start
from. The plain MLP (flattened image → [Dense → Dropout] × depth → Dense logits) is seed
000's "dropout + dense" model and seed 001's 784-128-64-10 ReLU network; a CNN reshapes the
rows to 28×28×1 images first, and normalization and residual blocks follow the architecture.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import ops

from app.domain.architecture import Block, Hidden, Weighted
from app.domain.datasets import DATASETS
from app.domain.layers import BIAS, KERNEL, PROJECTION_BIAS, PROJECTION_KERNEL, dropout_seed, layer_seed
from app.domain.spec import RunSetup
from worker.training.initializers import build
from worker.training.layers import IndexedRows, RunDropout, StackedDense
from worker.training.run_layers import (RunActivation, RunAdd, RunNormalization, RunPooling, RunReshape, StackedConv,
                                        pool_first, pooling_first)


def build_network(setups: Sequence[RunSetup], rows, as_bytes: bool = False):
    """(batch, runs) row indices → (batch, runs, classes) logits, slice k being run k's network.

    Layer names are the domain's (conv_0 …, bn_0 …, dense_0 …, proj_j, output), so records
    match across runs and groups.
    """
    first = setups[0]
    network = first.architecture()
    index = keras.Input(shape=(len(setups),), dtype="int32", name="rows")
    hidden = IndexedRows(rows, as_bytes, name="pixels")(index)
    order = iter(range(len(network.weighted())))
    sample = (DATASETS[first.dataset.name].input_dim,)  # one sample's shape as it flows
    for block in network.blocks:
        if block.layers[0].layer.kind == "conv" and len(sample) == 1:
            sample = DATASETS[first.dataset.name].image_shape
            hidden = RunReshape(sample, name="image")(hidden)
        elif block.layers[0].layer.kind == "dense" and len(sample) > 1:
            sample = (math.prod(sample),)
            hidden = RunReshape(sample, name="flatten")(hidden)
        hidden, last = _block(block, hidden, setups, order)
        sample = block.layers[-1].output_shape
        if block.pooled_shape is not None:
            pooling = RunPooling(network.pooling, name=f"pool_{block.layers[-1].index}")
            if isinstance(last, StackedConv):  # pooling directly after a plain convolution
                pool_first(last, pooling, first.activation)
            hidden = pooling(hidden)
            sample = block.pooled_shape
    if len(sample) > 1:
        hidden = RunReshape((math.prod(sample),), name="flatten")(hidden)
    hidden, _ = _weighted(network.output, hidden, setups, "linear", next(order))
    outputs = ops.transpose(hidden, (1, 0, 2))
    return GroupNetwork(index, outputs, name="initlab_network")


class GroupNetwork(keras.Model):
    """The group's functional model, whose compiled validation step pools first where that is exact
    (run_layers.pool_first): validation reads only the outputs. 2.09 → 1.76 s a validation epoch
    of the CNN workload's group of 8, the same losses."""

    def test_step(self, *args, **kwargs):  # (data) on TensorFlow, (state, data) on JAX
        with pooling_first():
            return super().test_step(*args, **kwargs)


def _block(block: Block, hidden, setups: Sequence[RunSetup], order):
    """One plain layer, or a residual pair: x → L₁ → N₁ → act → L₂ → N₂ (+ skip) → act.

    Returns the block's output and the layer that made it.
    """
    first = setups[0]
    block_input = hidden
    for position, layer in enumerate(block.layers):
        last = position == len(block.layers) - 1
        plain = layer.norm is None and not (block.residual and last)
        weighted_position = next(order)
        hidden, made = _weighted(layer.layer, hidden, setups, first.activation if plain else "linear",
                                 weighted_position)
        if layer.norm is not None:
            # zero_init_residual: a block's last scale starts at 0, so the block starts as its skip.
            scale = "zeros" if first.zero_init_residual and block.residual and last else "ones"
            norm = RunNormalization(first.normalization, len(setups), scale, name=layer.norm)
            norm.position = weighted_position  # recorded beside the layer it normalizes
            hidden, made = norm(hidden), norm
        if block.residual and last:
            skip = block_input
            if block.projection is not None:
                skip, _ = _weighted(block.projection, block_input, setups, "linear", next(order))
            made = RunAdd(name=f"add_{layer.index}")
            hidden = made([hidden, skip])
        if not plain:
            made = RunActivation(first.activation, name=f"act_{layer.index}")
            hidden = made(hidden)
        hidden, made = _dropout(layer, hidden, setups, made)
    return hidden, made


def _dropout(layer: Hidden, hidden, setups: Sequence[RunSetup], made):
    rate = setups[0].dropout
    if rate <= 0:
        return hidden, made
    seeds = [dropout_seed(setup.seed, layer.index) for setup in setups]
    dropout = RunDropout(float(rate), seeds, name=f"dropout_{layer.index}")
    return dropout(hidden), dropout


def _weighted(layer: Weighted, hidden, setups: Sequence[RunSetup], activation: str, position: int):
    """A convolution or Dense layer (or a projection), each run's slice drawn by that run's initializers."""
    kernel_role, bias_role = (PROJECTION_KERNEL, PROJECTION_BIAS) if layer.projection else (KERNEL, BIAS)
    kernels = [build(setup.kernel_for(layer), layer_seed(setup.seed, layer.seed_index, kernel_role))
               for setup in setups]
    biases = None
    if layer.bias:
        biases = [build(setup.bias, layer_seed(setup.seed, layer.seed_index, bias_role)) for setup in setups]
    if layer.kind == "conv":
        made = StackedConv(layer.units, layer.kernel_shape[0], activation, kernels, biases, name=layer.name)
    else:
        made = StackedDense(layer.units, activation, kernel_initializers=kernels, bias_initializers=biases,
                            name=layer.name)
    made.position = position  # where the architecture lists it (weighted_layers' order)
    return made(hidden), made


def weighted_layers(model) -> list:
    """Every layer with a kernel and a bias, in the architecture's order (app/domain/architecture.py)."""
    found = [layer for layer in model.layers if isinstance(layer, (StackedDense, StackedConv))]
    return sorted(found, key=lambda layer: layer.position)


def normalization_layers(model) -> list[RunNormalization]:
    """BatchNorm/LayerNorm layers in the order of the layers they normalize."""
    found = [layer for layer in model.layers if isinstance(layer, RunNormalization)]
    return sorted(found, key=lambda layer: layer.position)


def is_plain_mlp(model) -> bool:
    """Dense layers each applying its own activation to the last one's output: no conv, norm or skip."""
    return not any(isinstance(layer, (StackedConv, RunNormalization, RunAdd)) for layer in model.layers)


def check_group(setups: Sequence[RunSetup]) -> None:
    """ValueError unless the runs can train in one model (a bug upstream: a study's cell shares all this)."""
    if not setups:
        raise ValueError("a group needs at least one run")
    ids = [setup.run_id for setup in setups]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a run appears twice in one group: {ids}")
    first = setups[0].shared()
    for setup in setups[1:]:
        differ = [name for name, value in setup.shared().items() if first[name] != value]
        if differ:
            raise ValueError(f"run {setup.run_id} cannot train in one model with run {setups[0].run_id}: "
                             f"they differ in {', '.join(differ)}")
