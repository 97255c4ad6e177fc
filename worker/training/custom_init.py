"""The declarative custom initializer: a distribution, a fan mode, a scale and a clip.

A user describes a scheme with four plain values and never sends code: the worker only
ever runs ``keras.initializers`` (and ``keras.random`` for truncations other than
Keras's own 2σ). The variance follows Keras's ``VarianceScaling``, so a spec that names
a known scheme draws that scheme's very tensor: ``truncated_normal, fan_in, scale 2``
is He normal bit for bit, ``normal, fan_in, scale 2`` is seed 002's numpy recipe.

Seed 001's exercise, "a normal distribution that clips values more than 2 standard
deviations from the mean", is ``{"distribution": "truncated_normal", "clip_sigma": 2}``:
draws of N(0, σ₀²) beyond ±2σ₀ are redrawn. Truncation shrinks the spread, so σ₀ is
chosen as σ / c(k), c(k) = std of a standard normal truncated at ±k
(``scipy.stats.truncnorm(-k, k).std()``; c(2) = 0.8796, Keras's constant), and the kept
values have exactly the requested std σ. Keras's own truncated normal cuts at 2σ₀ only;
any other k is drawn by inverting the normal CDF on a uniform draw restricted to
[Φ(−k), Φ(k)], which gives the same truncated law.

Importable without Keras: the API validates specs with ``DEFAULTS``/``RULES``/``label``;
``build`` imports Keras when a worker builds a layer.
"""

from __future__ import annotations

import math
from typing import Any

DISTRIBUTIONS = ("normal", "truncated_normal", "uniform", "constant")
MODES = ("fan_in", "fan_out", "fan_avg", "none")
KERAS_CLIP_SIGMA = 2.0  # where keras.random.truncated_normal cuts
KERAS_TRUNCATION_STD = 0.87962566103423978  # c(2), as VarianceScaling writes it
# Beyond 6σ₀ a truncation drops under 2e-9 of the mass (use "normal"), and float32's
# inverse CDF cannot resolve those tails anyway.
MAX_CLIP_SIGMA = 6.0

DEFAULTS: dict[str, Any] = {"distribution": "truncated_normal", "mode": "fan_in", "scale": 1.0, "clip_sigma": None}
RULES: dict[str, dict[str, Any]] = {
    "distribution": {"type": "string", "enum": list(DISTRIBUTIONS)},
    "mode": {"type": "string", "enum": list(MODES)},
    "scale": {"type": "number", "exclusiveMinimum": 0.0},
    # null: Keras's 2σ for a truncated normal; a number only there.
    "clip_sigma": {"type": "number", "nullable": True, "exclusiveMinimum": 0.0, "maximum": MAX_CLIP_SIGMA,
                   "only_with": {"distribution": ["truncated_normal"]}},
}
FORMULA = (
    "σ = √(scale/n), n = fan_in | fan_out | (fan_in+fan_out)/2 | 1 (none); normal: N(0, σ²); "
    "uniform: U[±√3·σ]; constant: σ; truncated_normal: N(0, σ₀²) with draws beyond ±k·σ₀ redrawn, "
    "k = clip_sigma (blank: 2), σ₀ = σ/c(k) so the std stays σ"
)
REFERENCE = ("Keras VarianceScaling; seed 001's custom initializer and its exercise "
             "(normal clipped at 2σ: truncated_normal, clip_sigma 2)")


def clip_of(params: dict[str, Any]) -> float:
    clip = params.get("clip_sigma")
    return KERAS_CLIP_SIGMA if clip is None else float(clip)


def label(params: dict[str, Any]) -> str:
    """A readable name for charts and lists: "custom: truncated normal, fan_in, scale 1, clip 2σ"."""
    merged = {**DEFAULTS, **params}
    parts = [str(merged["distribution"]).replace("_", " "), str(merged["mode"]), f"scale {float(merged['scale']):g}"]
    if merged["distribution"] == "truncated_normal":
        parts.append(f"clip {clip_of(merged):g}σ")
    return "custom: " + ", ".join(parts)


def truncation_std(clip_sigma: float) -> float:
    """c(k): the std of a standard normal truncated at ±k."""
    if clip_sigma == KERAS_CLIP_SIGMA:
        return KERAS_TRUNCATION_STD
    from scipy.stats import truncnorm

    return float(truncnorm(-clip_sigma, clip_sigma).std())


def fan(shape: tuple[int, ...], mode: str) -> float:
    """n of σ² = scale/n, as keras.initializers.VarianceScaling counts it (at least 1)."""
    if mode == "none":
        return 1.0
    shape = tuple(int(size) for size in shape)
    if not shape:
        fan_in = fan_out = 1
    elif len(shape) == 1:
        fan_in = fan_out = shape[0]
    else:
        receptive = math.prod(shape[:-2])
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    if mode == "fan_in":
        return max(1.0, fan_in)
    if mode == "fan_out":
        return max(1.0, fan_out)
    return max(1.0, (fan_in + fan_out) / 2.0)


def build(params: dict[str, Any], seed: int | None):
    """A seeded initializer for validated, merged ``params``: a ``keras.initializers`` object
    wherever Keras has the scheme (so it reads like any other entry), else a fan-aware callable."""
    import keras

    initializers = keras.initializers
    distribution, mode, scale = params["distribution"], params["mode"], float(params["scale"])
    clip = clip_of(params)
    keras_name = {"normal": "untruncated_normal", "uniform": "uniform"}.get(distribution)
    if distribution == "truncated_normal" and clip == KERAS_CLIP_SIGMA:
        keras_name = "truncated_normal"
    if mode != "none" and keras_name:
        return initializers.VarianceScaling(scale=scale, mode=mode, distribution=keras_name, seed=seed)
    if mode == "none" and keras_name:
        sigma, limit = math.sqrt(scale), math.sqrt(3.0 * scale)
        return {
            "untruncated_normal": lambda: initializers.RandomNormal(mean=0.0, stddev=sigma, seed=seed),
            "uniform": lambda: initializers.RandomUniform(minval=-limit, maxval=limit, seed=seed),
            "truncated_normal": lambda: initializers.TruncatedNormal(
                mean=0.0, stddev=sigma / KERAS_TRUNCATION_STD, seed=seed),
        }[keras_name]()

    def initialize(shape, dtype=None):
        # A constant σ or a truncation Keras does not have: σ needs the fan of the shape.
        sigma = math.sqrt(scale / fan(shape, mode))
        if distribution == "constant":
            return initializers.Constant(sigma)(shape, dtype=dtype)
        return _truncated(shape, dtype, sigma / truncation_std(clip), clip, seed)

    return initialize


def _truncated(shape, dtype, sigma0: float, clip: float, seed: int | None):
    """N(0, σ₀²) restricted to ±clip·σ₀, by the inverse CDF of a restricted uniform draw."""
    import keras
    from keras import ops
    from scipy.stats import norm

    low, high = float(norm.cdf(-clip)), float(norm.cdf(clip))
    uniform = keras.random.uniform(tuple(shape), minval=low, maxval=high, dtype="float32", seed=seed)
    values = ops.erfinv(ops.subtract(ops.multiply(uniform, 2.0), 1.0)) * (math.sqrt(2.0) * sigma0)
    bound = clip * sigma0
    # float32 rounds the far tails of the CDF to ±1 (erfinv = ±inf); the bound is where they belong.
    return ops.cast(ops.clip(values, -bound, bound), dtype or keras.config.floatx())
