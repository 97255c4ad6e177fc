"""Layers of a run's network: their names, their shapes' fans, and the seed each draws from.

One definition of each, shared by the worker (which builds the layers), the API (which
checks a study and draws the theory of its weights) and the pages (which key on the names).

Seeds: a seeded Keras initializer returns the same values on every call, so reusing one
instance for two layers of the same shape would give them identical weights. Each
(layer, role) therefore gets its own seed, derived from the run's seed alone, so a run
trained alone and the same run inside a fused group start from the same weights.
"""

from __future__ import annotations

import math

import numpy as np

KERNEL, BIAS, DROPOUT = 0, 1, 2
# A residual block's skip projection draws from its block's first layer index, in roles of its own.
PROJECTION_KERNEL, PROJECTION_BIAS = 3, 4
OUTPUT_LAYER = "output"
# What is recorded per layer: a weighted layer's kernel, bias and kernel gradient; a
# normalization layer's scale, offset and (BatchNorm) moving statistics, in its weights' order.
WEIGHT_KINDS = ("kernel", "bias", "gradient")
NORMALIZATION_KINDS = ("gamma", "beta", "moving_mean", "moving_variance")
TENSOR_KINDS = WEIGHT_KINDS + NORMALIZATION_KINDS


def dense_layer_names(depth: int) -> list[str]:
    """Stable names the pages and storage key on: dense_0 … dense_{depth-1}, then output."""
    return [f"dense_{index}" for index in range(depth)] + [OUTPUT_LAYER]


def layer_seed(run_seed: int, layer_index: int, role: int) -> int:
    """An independent seed per (layer, role: KERNEL, BIAS, DROPOUT or a projection's), derived from the run seed."""
    return int(np.random.SeedSequence([run_seed, layer_index, role]).generate_state(1)[0])


def dropout_seed(run_seed: int, layer_index: int) -> int:
    """The seed of the dropout mask stream after hidden layer ``layer_index``."""
    return layer_seed(run_seed, layer_index, DROPOUT)


def fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """(fan_in, fan_out) as keras.initializers.VarianceScaling counts them.

    A (in, out) kernel: in and out; a bias (units,): units both; a convolution kernel
    (kh, kw, c_in, c_out): kh·kw·c_in and kh·kw·c_out (Keras's ``compute_fans``).
    """
    shape = tuple(int(size) for size in shape)
    if not shape:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def fan(shape: tuple[int, ...], mode: str) -> float:
    """n of σ² = scale / n for a VarianceScaling ``mode`` (at least 1, as Keras takes it)."""
    if mode == "none":
        return 1.0
    fan_in, fan_out = fans(shape)
    chosen = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    return max(1.0, chosen)
