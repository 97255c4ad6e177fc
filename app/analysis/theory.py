"""What an initializer promises, checked against what a run actually started from.

Each registry entry builds a Keras initializer; its class and attributes (VarianceScaling's
scale, mode and distribution; RandomUniform's bounds; ...) define the distribution of the
initial weights of a layer of a given shape. This module turns that into a scipy
distribution, draws its density on the page's histogram axis, and measures the
Kolmogorov-Smirnov statistic between it and the run's recorded epoch-0 tensor.

The KS statistic comes from the 129 stored quantiles (worker/training/stats.py): the
empirical CDF is i/Q at the i-th quantile, so sup |F_emp - F| is exact at those points and
off by at most 1/Q = 0.8 % in between. A tensor is flagged when the statistic exceeds
1/Q + 1.95/sqrt(n): the quantization bound plus the KS test's critical value at
alpha = 0.001, so a correct initializer is flagged about once in a thousand tensors. On a
784 x 128 kernel that is 0.014; correct entries measure 0.009-0.011, while He uniform
read as Glorot uniform (limits 8 % apart) gives 0.044, and a truncated normal read as an
untruncated one 0.027.

Keras is imported only when a distribution is asked for (the registry's builders need it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

# Keras' truncated normals redraw beyond 2 sigma; VarianceScaling divides sigma by the std of
# a unit normal truncated at +-2 so the kept values have the asked-for variance.
TRUNCATION = 2.0
TRUNCATED_STD = 0.87962566103423978
KS_CRITICAL = 1.95  # sqrt(-ln(alpha/2)/2) at alpha = 0.001


def mismatch_threshold(size: int, quantiles: int) -> float:
    """The KS statistic above which a tensor of ``size`` values does not follow the theory."""
    return 1.0 / max(1, quantiles - 1) + KS_CRITICAL / math.sqrt(max(1, size))


@dataclass(frozen=True)
class Theory:
    """A layer's promised initial distribution: ``dist`` (scipy, frozen) or ``point`` (a constant)."""

    label: str
    dist: Any = None
    point: float | None = None
    approximate: bool = False  # orthogonal: entries are only close to normal


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras' rule: a (in, out) kernel has fans in and out; a (units,) bias has both = units."""
    if len(shape) == 1:
        return shape[0], shape[0]
    return shape[0], shape[1]


def theory_of(initializer: Any, shape: tuple[int, ...]) -> Theory | None:
    """The distribution a built Keras initializer draws a tensor of ``shape`` from (None: unknown).

    Reads the same attributes Keras' own ``__call__`` uses, so a registry entry whose builder
    passes a wrong argument is caught by the KS check rather than copied here.
    """
    import keras

    init = keras.initializers
    fan_in, fan_out = fans(shape)
    if isinstance(initializer, init.Constant):
        value = float(np.asarray(initializer.value).reshape(-1)[0])
        return Theory(f"W = {value:g}", point=value)
    if isinstance(initializer, (init.Zeros,)):
        return Theory("W = 0", point=0.0)
    if isinstance(initializer, (init.Ones,)):
        return Theory("W = 1", point=1.0)
    if isinstance(initializer, init.VarianceScaling):
        n = {"fan_in": fan_in, "fan_out": fan_out}.get(initializer.mode, (fan_in + fan_out) / 2)
        variance = initializer.scale / max(1.0, n)
        if initializer.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return Theory(f"U[±{limit:.4g}]", stats.uniform(-limit, 2 * limit))
        if initializer.distribution == "untruncated_normal":
            return Theory(f"N(0, {math.sqrt(variance):.4g}²)", stats.norm(0.0, math.sqrt(variance)))
        sigma = math.sqrt(variance) / TRUNCATED_STD
        return Theory(f"N(0, {sigma:.4g}²) truncated at ±2σ",
                      stats.truncnorm(-TRUNCATION, TRUNCATION, loc=0.0, scale=sigma))
    if isinstance(initializer, init.RandomUniform):
        low, high = float(initializer.minval), float(initializer.maxval)
        return Theory(f"U[{low:.4g}, {high:.4g}]", stats.uniform(low, high - low))
    if isinstance(initializer, init.TruncatedNormal):
        mean, sigma = float(initializer.mean), float(initializer.stddev)
        return Theory(f"N({mean:.4g}, {sigma:.4g}²) truncated at ±2σ",
                      stats.truncnorm(-TRUNCATION, TRUNCATION, loc=mean, scale=sigma))
    if isinstance(initializer, init.RandomNormal):
        mean, sigma = float(initializer.mean), float(initializer.stddev)
        return Theory(f"N({mean:.4g}, {sigma:.4g}²)", stats.norm(mean, sigma))
    if isinstance(initializer, init.Orthogonal) and len(shape) == 2:
        # Each entry of gain * Q, Q with orthonormal columns (or rows), has variance gain²/max(in, out).
        sigma = float(initializer.gain) / math.sqrt(max(fan_in, fan_out))
        return Theory(f"≈ N(0, {sigma:.4g}²) (orthogonal)", stats.norm(0.0, sigma), approximate=True)
    return None


def theory_for(init_id: str, params: dict[str, Any], shape: tuple[int, ...]) -> Theory | None:
    """The registry entry ``init_id`` with ``params``, for a tensor of ``shape``."""
    from worker.training.initializers import REGISTRY, build_initializer

    if init_id in REGISTRY and REGISTRY[init_id].rescale_on_data:
        return None  # LSUV: drawn, then rescaled on a data batch; no closed form to check
    try:
        built = build_initializer(init_id, params, 0)
    except (KeyError, ValueError):
        return None
    return theory_of(built, shape)


def ks_from_quantiles(quantiles: list[float] | None, theory: Theory) -> float | None:
    """sup |F_emp - F| at the stored quantiles (within 1/Q of the exact statistic)."""
    if not quantiles or len(quantiles) < 2:
        return None
    q = np.asarray(quantiles, dtype=np.float64)
    levels = np.linspace(0.0, 1.0, q.size)
    if theory.point is not None:
        # All mass at one value: the share of quantiles elsewhere is the distance.
        return float(np.mean(~np.isclose(q, theory.point, rtol=1e-6, atol=1e-12)))
    cdf = theory.dist.cdf(q)
    # The empirical CDF jumps at each quantile: compare both sides of the step.
    step = 1.0 / (q.size - 1)
    return float(max(np.max(np.abs(levels - cdf)), np.max(np.abs(np.clip(levels - step, 0, 1) - cdf))))


def density_on(theory: Theory, low: float, high: float, points: int = 200) -> dict[str, list[float]] | None:
    """The theory's density across [low, high] (the histogram's axis), for the overlay."""
    if theory.point is not None or not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return None
    support_low, support_high = theory.dist.support()
    xs = np.linspace(low, high, points)
    # Add the support's edges so a uniform's or truncated normal's cliffs are drawn square.
    edges = [value for value in (support_low, support_high) if low < value < high]
    xs = np.unique(np.concatenate([xs, edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)]))
    ys = theory.dist.pdf(xs)
    return {"x": [float(x) for x in xs], "y": [float(y) for y in ys]}
