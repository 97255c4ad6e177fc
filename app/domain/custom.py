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

The declaration lives here, in the TensorFlow-free domain (the API validates specs with
``DEFAULTS``/``RULES``/``label`` and draws the theory with ``truncation_std``); the worker
turns it into a Keras initializer (worker/training/initializers.py).
"""

from __future__ import annotations

from typing import Any

from app.domain.param_rules import MAX_MAGNITUDE

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
    "scale": {"type": "number", "exclusiveMinimum": 0.0, "maximum": MAX_MAGNITUDE},
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
