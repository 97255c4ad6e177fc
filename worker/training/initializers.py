"""The registry's entries as seeded ``keras.initializers`` objects.

Every entry of app/domain/registry.py says what it draws as a recipe (a Keras initializer
class and its arguments); this is the one place that turns a recipe into the object, so a
run can be repeated bit for bit from its seed and Keras gets the subtle parts right (fans,
the truncated normal's variance correction). The declarative custom initializer maps to
``VarianceScaling`` wherever Keras has its law, and draws the rest (a constant σ, a
truncation other than Keras's 2σ) with ``keras.random`` here.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from app.domain import custom
from app.domain.layers import fan
from app.domain.registry import CUSTOM, DELTA_ORTHOGONAL, Recipe
from app.domain.spec import InitializerRef

# Classes whose draws do not depend on a seed (Keras refuses a seed argument for them).
UNSEEDED = ("Constant", "Zeros", "Ones")


def build(ref: InitializerRef, seed: int | None):
    """A seeded Keras initializer for a validated initializer reference."""
    return from_recipe(ref.recipe, seed)


def from_recipe(recipe: Recipe, seed: int | None):
    name, args = recipe
    if name == CUSTOM:
        return _custom({**custom.DEFAULTS, **args}, seed)
    if name == DELTA_ORTHOGONAL:
        return _delta_orthogonal(float(args["gain"]), seed)
    cls = getattr(keras.initializers, name)
    return cls(**args) if name in UNSEEDED else cls(**args, seed=seed)


def _delta_orthogonal(gain: float, seed: int | None):
    """Keras's Orthogonal on the (c_in, c_out) matrix, placed at a kernel's centre tap (Xiao et al. 2018).

    A convolution whose kernel is zero but at its centre maps each pixel's channels through one
    orthogonal matrix, so at init it preserves the norm of the signal as an orthogonal Dense layer
    does; a 2-D (Dense) shape is Orthogonal itself, the same draw for the same seed.
    """
    orthogonal = keras.initializers.Orthogonal(gain=gain, seed=seed)

    def initialize(shape, dtype=None):
        shape = tuple(int(size) for size in shape)
        if len(shape) <= 2:
            return orthogonal(shape, dtype=dtype)
        centre = np.zeros((*shape[:-2], 1, 1), dtype=np.float32)
        centre[tuple(size // 2 for size in shape[:-2])] = 1.0
        matrix = orthogonal(shape[-2:], dtype=dtype)
        return ops.multiply(ops.convert_to_tensor(centre, dtype=matrix.dtype), matrix)

    return initialize


def _custom(params: dict[str, Any], seed: int | None):
    """A ``keras.initializers`` object wherever Keras has the scheme, else a fan-aware callable."""
    distribution, mode, scale = params["distribution"], params["mode"], float(params["scale"])
    clip = custom.clip_of(params)
    keras_name = {"normal": "untruncated_normal", "uniform": "uniform"}.get(distribution)
    if distribution == "truncated_normal" and clip == custom.KERAS_CLIP_SIGMA:
        keras_name = "truncated_normal"
    initializers = keras.initializers
    if mode != "none" and keras_name:
        return initializers.VarianceScaling(scale=scale, mode=mode, distribution=keras_name, seed=seed)
    if mode == "none" and keras_name:
        sigma, limit = math.sqrt(scale), math.sqrt(3.0 * scale)
        return {
            "untruncated_normal": lambda: initializers.RandomNormal(mean=0.0, stddev=sigma, seed=seed),
            "uniform": lambda: initializers.RandomUniform(minval=-limit, maxval=limit, seed=seed),
            "truncated_normal": lambda: initializers.TruncatedNormal(
                mean=0.0, stddev=sigma / custom.KERAS_TRUNCATION_STD, seed=seed),
        }[keras_name]()

    def initialize(shape, dtype=None):
        # A constant σ or a truncation Keras does not have: σ needs the fan of the shape.
        sigma = math.sqrt(scale / fan(shape, mode))
        if distribution == "constant":
            return initializers.Constant(sigma)(shape, dtype=dtype)
        return _truncated(shape, dtype, sigma / custom.truncation_std(clip), clip, seed)

    return initialize


def _truncated(shape, dtype, sigma0: float, clip: float, seed: int | None):
    """N(0, σ₀²) restricted to ±clip·σ₀, by the inverse CDF of a restricted uniform draw."""
    from scipy.stats import norm

    low, high = float(norm.cdf(-clip)), float(norm.cdf(clip))
    uniform = keras.random.uniform(tuple(shape), minval=low, maxval=high, dtype="float32", seed=seed)
    values = ops.erfinv(ops.subtract(ops.multiply(uniform, 2.0), 1.0)) * (math.sqrt(2.0) * sigma0)
    bound = clip * sigma0
    # float32 rounds the far tails of the CDF to ±1 (erfinv = ±inf); the bound is where they belong.
    return ops.cast(ops.clip(values, -bound, bound), dtype or keras.config.floatx())
