"""What an initializer promises, in closed form, checked against what a run actually started from.

Each registry entry's recipe (app/domain/registry.py) names the Keras initializer and its
arguments (VarianceScaling's scale, mode and distribution; RandomUniform's bounds; ...),
which define the distribution of the initial weights of a layer of a given shape. This
module turns a recipe into a scipy distribution, draws its density on the page's histogram
axis, and measures the Kolmogorov-Smirnov statistic between it and the run's recorded
epoch-0 tensor, with scipy alone: the API answers the theory check without Keras. The
registry's own tests draw every entry with Keras and compare with these closed forms.

The KS statistic comes from the 129 stored quantiles (worker/training/stats.py): the
empirical CDF is i/Q at the i-th quantile, so sup |F_emp - F| is exact at those points and
off by at most 1/Q = 0.8 % in between. A tensor is flagged when the statistic exceeds
1/Q + 1.95/sqrt(n): the quantization bound plus the KS test's critical value at
alpha = 0.001, so a correct initializer is flagged about once in a thousand tensors. On a
784 x 128 kernel that is 0.014; correct entries measure 0.009-0.011, while He uniform
read as Glorot uniform (limits 8 % apart) gives 0.044, and a truncated normal read as an
untruncated one 0.027.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from app.domain import custom
from app.domain.layers import fan
from app.domain.registry import CUSTOM, DELTA_ORTHOGONAL, REGISTRY, Recipe, recipe_of

# Keras' truncated normals redraw beyond 2 sigma; VarianceScaling divides sigma by the std of
# a unit normal truncated at +-2 so the kept values have the asked-for variance.
TRUNCATION = custom.KERAS_CLIP_SIGMA
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


def theory_of(recipe: Recipe, shape: tuple[int, ...]) -> Theory | None:
    """The distribution a recipe draws a tensor of ``shape`` from (None: no closed form)."""
    name, args = recipe
    if name == "Constant":
        value = float(args["value"])
        return Theory(f"W = {value:g}", point=value)
    if name == "VarianceScaling":
        return _variance_scaling(args["scale"] / fan(shape, args["mode"]), args["distribution"], TRUNCATION)
    if name == CUSTOM:
        merged = {**custom.DEFAULTS, **args}
        variance = float(merged["scale"]) / fan(shape, merged["mode"])
        if merged["distribution"] == "constant":
            value = float(np.float32(math.sqrt(variance)))
            return Theory(f"W = {value:.4g}", point=value)
        distribution = {"normal": "untruncated_normal"}.get(merged["distribution"], merged["distribution"])
        return _variance_scaling(variance, distribution, custom.clip_of(merged))
    if name == "RandomUniform":
        low, high = float(args["minval"]), float(args["maxval"])
        return Theory(f"U[{low:.4g}, {high:.4g}]", stats.uniform(low, high - low))
    if name == "TruncatedNormal":
        mean, sigma = float(args["mean"]), float(args["stddev"])
        return Theory(f"N({mean:.4g}, {sigma:.4g}²) truncated at ±2σ",
                      stats.truncnorm(-TRUNCATION, TRUNCATION, loc=mean, scale=sigma))
    if name == "RandomNormal":
        mean, sigma = float(args["mean"]), float(args["stddev"])
        return Theory(f"N({mean:.4g}, {sigma:.4g}²)", stats.norm(mean, sigma))
    if name == "Orthogonal" or (name == DELTA_ORTHOGONAL and len(shape) == 2):  # a Dense delta-orthogonal is orthogonal
        # Each entry of gain * Q, Q with orthonormal columns (or rows), has variance gain²/max(rows, cols);
        # Keras flattens a conv kernel to (kh·kw·c_in) rows × c_out columns first.
        sigma = float(args["gain"]) / math.sqrt(max(math.prod(shape[:-1]), shape[-1]))
        return Theory(f"≈ N(0, {sigma:.4g}²) (orthogonal)", stats.norm(0.0, sigma), approximate=True)
    if name == DELTA_ORTHOGONAL and len(shape) > 2:
        # gain·Q (c_in × c_out orthogonal) at the centre tap, zeros at the other kh·kw − 1 taps.
        taps = math.prod(shape[:-2])
        sigma = float(args["gain"]) / math.sqrt(max(shape[-2], shape[-1]))
        return Theory(f"0 at {taps - 1} of {taps} taps, ≈ N(0, {sigma:.4g}²) at the centre (delta-orthogonal)",
                      AtomAtZero(stats.norm(0.0, sigma), 1.0 / taps), approximate=True)
    return None


@dataclass(frozen=True)
class AtomAtZero:
    """A draw of ``continuous`` with probability ``share``, else exactly 0: the scipy methods the
    theory check uses (cdf, its left limit, pdf of the continuous part, ppf, support)."""

    continuous: Any
    share: float

    def cdf(self, x):
        return self.share * self.continuous.cdf(x) + (1.0 - self.share) * (np.asarray(x) >= 0)

    def cdf_left(self, x):
        return self.share * self.continuous.cdf(x) + (1.0 - self.share) * (np.asarray(x) > 0)

    def pdf(self, x):
        return self.share * self.continuous.pdf(x)

    def ppf(self, levels):
        levels = np.asarray(levels, dtype=np.float64)
        below = self.share * self.continuous.cdf(0.0)  # mass of the continuous part below 0
        above = below + 1.0 - self.share
        inner = np.where(levels < below, levels / self.share,
                         np.where(levels > above, (levels - 1.0 + self.share) / self.share, 0.5))
        return np.where((levels >= below) & (levels <= above), 0.0, self.continuous.ppf(inner))

    def support(self):
        return self.continuous.support()


def _variance_scaling(variance: float, distribution: str, clip: float) -> Theory:
    """VarianceScaling's law for a variance: uniform ±√(3σ²), a normal, or a normal truncated
    at ±clip·σ₀ with σ₀ = σ / c(clip) so the kept values have variance σ²."""
    if distribution == "uniform":
        limit = math.sqrt(3.0 * variance)
        return Theory(f"U[±{limit:.4g}]", stats.uniform(-limit, 2 * limit))
    if distribution == "untruncated_normal":
        return Theory(f"N(0, {math.sqrt(variance):.4g}²)", stats.norm(0.0, math.sqrt(variance)))
    sigma = math.sqrt(variance) / custom.truncation_std(clip)
    return Theory(f"N(0, {sigma:.4g}²) truncated at ±{clip:g}σ", stats.truncnorm(-clip, clip, loc=0.0, scale=sigma))


def theory_for(init_id: str, params: dict[str, Any], shape: tuple[int, ...]) -> Theory | None:
    """The registry entry ``init_id`` with ``params``, for a tensor of ``shape``."""
    entry = REGISTRY.get(init_id)
    if entry is None or entry.rescale_on_data:
        return None  # LSUV: drawn, then rescaled on a data batch; no closed form to check
    try:
        return theory_of(recipe_of(init_id, params), shape)
    except (KeyError, ValueError):
        return None


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
    # Where the theory has an atom (delta-orthogonal's zeros) any level between F(x−) and F(x) fits.
    left = theory.dist.cdf_left(q) if hasattr(theory.dist, "cdf_left") else cdf
    # The empirical CDF jumps at each quantile: compare both sides of the step.
    step = 1.0 / (q.size - 1)

    def distance(at: np.ndarray) -> float:
        return float(np.max(np.maximum(np.maximum(at - cdf, left - at), 0.0)))

    return max(distance(levels), distance(np.clip(levels - step, 0, 1)))


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
