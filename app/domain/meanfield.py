"""Mean-field theory of signal propagation in deep random networks: the curves that the
signal page's measured per-layer lengths and correlations are drawn against.

At initialization, W_ij ~ N(0, σ_w²/fan_in) and b_i ~ N(0, σ_b²), a wide fully connected
network reduces to a recursion on two numbers per layer: the length q^l (the variance of a
pre-activation for one input) and the correlation c^l between two inputs' pre-activations.
P16: Poole, Lahiri, Raghu, Sohl-Dickstein, Ganguli 2016, "Exponential expressivity in deep
neural networks through transient chaos" (NeurIPS). S17: Schoenholz, Gilmer, Ganguli,
Sohl-Dickstein 2017, "Deep Information Propagation" (ICLR). Their text was not at hand here, so
no equation numbers, and sections are "cf."; the formulas themselves are checked by the tests.

    length map       q^{l+1} = V(q^l) = σ_w² E[φ(√q^l z)²] + σ_b²              P16, S17 cf. §2
    correlation map  c^{l+1} = (σ_w² E[φ(u1) φ(u2)] + σ_b²) / q*                P16, S17 cf. §2
                     u1 = √q* z1,  u2 = √q* (c z1 + √(1−c²) z2),  z1, z2 iid N(0, 1)
    χ₁  = σ_w² E[φ'(√q* z)²]        slope of the correlation map at c = 1      P16, S17 cf. §2
    χ_c = σ_w² E[φ'(u1*) φ'(u2*)]   its slope at c* (Price's theorem)
    ξ_q⁻¹ = −ln(χ₁ + σ_w² E[φ''(√q* z) φ(√q* z)]) = −ln V'(q*)                 S17 cf. §3
    ξ_c⁻¹ = −ln χ_c                 (= −ln χ₁ where c* = 1)                     S17 cf. §3
    trainable depth ≈ 6 ξ_c                                                    S17's training experiments

|q^l − q*| and |c^l − c*| decay as exp(−l/ξ_q) and exp(−l/ξ_c). χ₁ < 1: ordered (c* = 1, all
inputs end up alike, gradients vanish); χ₁ > 1: chaotic (c* < 1, gradients explode); χ₁ = 1:
the edge of chaos, where ξ_c is infinite. V'(q) is computed as σ_w²/(2q) E[φ(√q z)²(z² − 1)],
equal to χ₁ + σ_w² E[φ''φ] by Gaussian integration by parts, so no φ'' is needed (for relu,
leaky_relu and selu it holds a Dirac delta at 0, which contributes nothing as φ(0) = 0).

Conventions. q* is the limit of the length map from q0 (default 1). It is ``math.inf`` where
q^l grows without bound (relu with σ_w² > 2, or = 2 with σ_b² > 0; linear with σ_w² ≥ 1 and
σ_b² > 0; ...): c*, χ_c, ξ_q and ξ_c are then ``None`` (undefined without a fixed point) and χ₁
is its q → ∞ limit (exact for relu, leaky_relu and linear, whose χ₁ does not depend on q).
q* = 0 (σ_b² = 0, φ(0) = 0, ordered: the signal dies) is the limit σ_b² → 0+: c* = 1, χ₁ =
σ_w² φ'(0)², φ'(0)² averaging a kink's one-sided slopes. ξ = ``math.inf`` means no exponential
approach: the edge of chaos (slope within 1e-12 of 1), or a marginal map (relu at σ_w² = 2,
σ_b² = 0 keeps every q0). Strict JSON has no inf: the API layer must encode it.

Expectations use composite Gauss-Legendre rules on |z| ≤ 12 whose panels end at φ's kink (z =
0; in two dimensions also, per z1, at the z2 where u2 = 0) and at the scales of both the Gaussian
and φ(√q z). Gauss-Hermite (200 nodes) misses relu's and elu's kinks by 1e-4 to 1e-3, and any
fixed rule misses φ's features once q is large. These match relu's arc-cosine and erf's arcsine
kernels to ~1e-10 for q in [1e-3, 1e4] (1e-8 as c → 1), scipy's quad to 1e-9 up to q = 1e4.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import numpy as np
from scipy import optimize, special

Fn = Callable[[np.ndarray], np.ndarray]

LEAKY_RELU_SLOPE = 0.2  # keras.activations.leaky_relu's default negative_slope (Keras 3)
ELU_ALPHA = 1.0
SELU_ALPHA = 1.6732632423543772848170429916717  # Keras' (and Klambauer et al.'s) constants
SELU_SCALE = 1.0507009873554804934193349852946


def _elu(x, alpha=ELU_ALPHA):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _delu(x, alpha=ELU_ALPHA):
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


# name -> (φ, φ'). No node sits on a kink, and q = 0 is evaluated at a tiny q: one-sided limits.
_ACTIVATIONS: dict[str, tuple[Fn, Fn]] = {
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "sigmoid": (special.expit, lambda x: special.expit(x) * special.expit(-x)),
    "leaky_relu": (lambda x: np.where(x > 0, x, LEAKY_RELU_SLOPE * x),
                   lambda x: np.where(x > 0, 1.0, LEAKY_RELU_SLOPE)),
    "elu": (_elu, _delu),
    "selu": (lambda x: SELU_SCALE * _elu(x, SELU_ALPHA), lambda x: SELU_SCALE * _delu(x, SELU_ALPHA)),
    "linear": (lambda x: np.asarray(x, dtype=float), np.ones_like),
    "erf": (special.erf, lambda x: 2.0 / math.sqrt(math.pi) * np.exp(-np.square(x))),  # theory only
}
SUPPORTED_ACTIVATIONS: tuple[str, ...] = tuple(_ACTIVATIONS)


def activation_functions(name: str) -> tuple[Fn, Fn]:
    """(φ, φ') of a Keras activation name (plus "erf", whose integrals have closed forms)."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(SUPPORTED_ACTIVATIONS)}") from None


# ---------------------------------------------------------------- Gaussian expectations

_CUTOFF = 12.0  # P(|z| > 12) = 4e-33: the rules integrate z over [-12, 12] only
_Q_TINY = 1e-300  # q = 0 is evaluated here, for the one-sided limits at φ's kink
_GAUSS_BREAKS = np.array([0.0, 1.5, 3.5, 6.5, _CUTOFF])  # panels at the scales of the Gaussian weight...
_PHI_BREAKS = np.array([0.5, 2.0, 8.0])  # ...and of φ around its kink or steep middle at u = 0
_OUTER = np.polynomial.legendre.leggauss(12)  # nodes per panel of the 1-D rule
_INNER = np.polynomial.legendre.leggauss(10)  # ... of the inner (z2) rule of the 2-D one


def _panels(breaks: np.ndarray, rule: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights over consecutive panels between sorted breaks (..., P)."""
    (x, w), lo, hi = rule, breaks[..., :-1, None], breaks[..., 1:, None]
    shape = (*breaks.shape[:-1], -1)
    return ((lo + hi) / 2 + (hi - lo) / 2 * x).reshape(shape), ((hi - lo) / 2 * w).reshape(shape)


def _normal_rule(q: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights of E[f(√q z)]: panels end at z = 0, where φ kinks, and at φ's and the
    Gaussian's scales, so both stay resolved whether φ(√q z) varies slower or faster than z."""
    half = np.sort(np.clip(np.concatenate([_GAUSS_BREAKS, _PHI_BREAKS / math.sqrt(max(q, _Q_TINY))]), 0, _CUTOFF))
    z, w = _panels(half, _OUTER)
    z, w = np.concatenate([-z[::-1], z]), np.concatenate([w[::-1], w])
    w = w * np.exp(-z**2 / 2)
    return z, w / w.sum()  # E[1] = 1 exactly, so χ₁ = 1 is exact where it should be (linear, tanh'(0))


def gaussian_expectation(f: Fn, q: float = 1.0) -> float:
    """E[f(√q z)], z ~ N(0, 1)."""
    z, w = _normal_rule(q)
    return float(np.dot(w, f(math.sqrt(max(q, _Q_TINY)) * z)))


def bivariate_expectation(f: Callable[[np.ndarray, np.ndarray], np.ndarray], q: float, c: float) -> float:
    """E[f(u1, u2)] with u1 = √q z1, u2 = √q (c z1 + √(1−c²) z2): two inputs of length q, correlation c.

    z1 runs over the 1-D rule; for each z1, z2 over panels that also end at b = −c z1/√(1−c²),
    where u2 = 0, and at φ's scales around it: both kinks (and the steep middles of tanh, erf)
    sit at panel ends.
    """
    c = min(1.0, max(-1.0, c))
    s, rq = math.sqrt(1.0 - c * c), math.sqrt(max(q, _Q_TINY))
    if s == 0.0:  # u2 = ±u1
        return gaussian_expectation(lambda u: f(u, c * u), q)
    z1, w1 = _normal_rule(q)
    gauss = np.concatenate([-_GAUSS_BREAKS[:0:-1], _GAUSS_BREAKS])
    around = np.concatenate([-_PHI_BREAKS[::-1], [0.0], _PHI_BREAKS]) / (rq * s)
    breaks = np.concatenate([np.broadcast_to(gauss, (len(z1), len(gauss))), (-c * z1 / s)[:, None] + around], 1)
    z2, w2 = _panels(np.sort(np.clip(breaks, -_CUTOFF, _CUTOFF), axis=1), _INNER)
    w2 = w2 * np.exp(-z2**2 / 2)
    w2 /= w2.sum(axis=1, keepdims=True)  # each row's weights integrate N(0, 1) over the line: 1
    return float(np.dot(w1, np.sum(w2 * f(rq * z1[:, None], rq * (c * z1[:, None] + s * z2)), axis=1)))


# ---------------------------------------------------------------- the maps

def length_map(activation: str, weight_variance: float, bias_variance: float, q: float) -> float:
    """q^{l+1} from q^l."""
    phi, _ = activation_functions(activation)
    return weight_variance * gaussian_expectation(lambda u: phi(u) ** 2, q) + bias_variance


def length_map_slope(activation: str, weight_variance: float, q: float) -> float:
    """V'(q) = χ₁ + σ_w² E[φ''φ] at q: the rate at which q^l approaches q* (see module docstring)."""
    phi, dphi = activation_functions(activation)
    if q <= 0.0:  # the limit q → 0+, which is χ₁ there (q* = 0 needs φ(0) = 0)
        return weight_variance * gaussian_expectation(lambda u: dphi(u) ** 2, 0.0)
    return weight_variance / (2 * q) * gaussian_expectation(lambda u: phi(u) ** 2 * (u * u / q - 1.0), q)


def correlation_map(activation: str, weight_variance: float, bias_variance: float, c: float, q: float) -> float:
    """c^{l+1} from two inputs of length q and correlation c (q = q*: the paper's map, whose slope is χ)."""
    phi, _ = activation_functions(activation)
    q_next = length_map(activation, weight_variance, bias_variance, q)
    if q_next <= 0.0:
        return c  # no signal left to correlate (σ_b² = 0, q underflowed): keep the last value
    cross = bivariate_expectation(lambda u1, u2: phi(u1) * phi(u2), q, c)
    return min(1.0, max(-1.0, (weight_variance * cross + bias_variance) / q_next))


_Q_HUGE = 1e15  # a length map still growing past here has no finite fixed point


def fixed_point_length(activation: str, weight_variance: float, bias_variance: float, q0: float = 1.0) -> float:
    """q* = lim V^l(q0); inf where q^l diverges, 0 where the signal dies, q0 where V(q0) = q0 already.

    V is increasing (E[φ(√q z)²] grows with q for every activation here), so q^l moves
    monotonically towards the nearest fixed point on the side where V(q0) lies: bracket it by
    doubling (or halving) and solve V(q) = q with brentq, instead of iterating, which crawls
    near the edge of chaos.
    """
    def gap(q: float) -> float:
        return length_map(activation, weight_variance, bias_variance, q) - q
    g0 = gap(q0)
    if abs(g0) <= 1e-13 * max(q0, bias_variance):  # a marginal map (relu at σ_w² = 2, σ_b² = 0) keeps q0
        return q0
    sign, step = (1.0, 2.0) if g0 > 0 else (-1.0, 0.5)
    near, far = q0, (q0 * step if q0 > 0 else g0)  # from q0 = 0, the first step is V(0) = g0
    # V(q) − q is only known to ~1e-15 q: the side changes where the gap clearly does, or a
    # map of slope 1 plus a bias (linear at σ_w² = 1) would find a root near 1e14 σ_b².
    while sign * gap(far) > -1e-12 * far:
        near, far = far, far * step
        if far > _Q_HUGE:
            return math.inf
        if far < 1e-150:
            return 0.0
    if sign * gap(near) <= 0:
        return near
    return optimize.brentq(gap, min(near, far), max(near, far), xtol=1e-300, rtol=4 * np.finfo(float).eps)


@dataclass(frozen=True)
class MeanField:
    """The fixed points and depth scales at one (σ_w², σ_b²); None where undefined (q* = inf)."""
    weight_variance: float
    q_star: float
    c_star: float | None
    chi_1: float
    chi_c: float | None
    xi_q: float | None
    xi_c: float | None


def _depth_scale(slope: float) -> float:
    """−1/ln(slope): inf at slope ≥ 1 (no exponential approach), 0 at slope 0."""
    if slope >= 1.0 - 1e-12:  # the edge of chaos up to rounding: report it as such
        return math.inf
    return 0.0 if slope <= 0.0 else -1.0 / math.log(slope)


def _chi_1(activation: str, weight_variance: float, bias_variance: float, q0: float = 1.0) -> tuple[float, float]:
    """(q*, χ₁ at q*); at q* = inf, χ₁'s q → ∞ limit."""
    _, dphi = activation_functions(activation)
    q = fixed_point_length(activation, weight_variance, bias_variance, q0)
    return q, weight_variance * gaussian_expectation(lambda u: dphi(u) ** 2, _Q_HUGE if math.isinf(q) else q)


def mean_field(activation: str, weight_variance: float, bias_variance: float, q0: float = 1.0) -> MeanField:
    """Everything at one point of the phase diagram, sharing the one q* and c* solve.

    c* is the fixed point reached from a correlation in [0, 1): the correlation map is a power
    series in c with non-negative coefficients, so on [0, 1] it is increasing and convex with
    C(1) = 1. Hence c* = 1 when χ₁ = C'(1) ≤ 1, and otherwise the one root of C(c) = c in [0, 1).
    """
    _check(weight_variance, bias_variance, q0)
    _, dphi = activation_functions(activation)
    q, chi_1 = _chi_1(activation, weight_variance, bias_variance, q0)
    if math.isinf(q):
        return MeanField(weight_variance, q, None, chi_1, None, None, None)
    xi_q = _depth_scale(length_map_slope(activation, weight_variance, q))
    c_star, chi_c = 1.0, chi_1
    if chi_1 > 1.0 + 1e-12:
        def gap(c: float) -> float:
            return correlation_map(activation, weight_variance, bias_variance, c, q) - c
        # Below 1e-9 the gap drowns in rounding: c* is then 1 to that accuracy (and ξ_c ~ inf).
        top = next((1.0 - eps for eps in 10.0 ** -np.arange(1, 10) if gap(1.0 - eps) < 0), None)
        if top is not None:
            c_star = 0.0 if gap(0.0) <= 0 else optimize.brentq(gap, 0.0, top, xtol=1e-15)
            chi_c = weight_variance * bivariate_expectation(lambda u1, u2: dphi(u1) * dphi(u2), q, c_star)
    return MeanField(weight_variance, q, c_star, chi_1, chi_c, xi_q, _depth_scale(chi_c))


def trainable_depth(activation: str, weight_variance: float, bias_variance: float, c: float = 6.0) -> float | None:
    """c·ξ_c: S17 found networks trainable up to about 6 ξ_c layers; None where ξ_c is undefined."""
    xi_c = mean_field(activation, weight_variance, bias_variance).xi_c
    return None if xi_c is None else c * xi_c


def critical_weight_variance(activation: str, bias_variance: float) -> float | None:
    """The σ_w² of the edge of chaos (χ₁ = 1 at a finite q*) at this σ_b²; None where there is none.

    σ_b² = 0 and φ(0) = 0: below 1/φ'(0)² the signal dies (q* = 0) with χ₁ = σ_w² φ'(0)², so χ₁
    first reaches 1 there, in closed form (a scan finds it to 1e-7 only, χ₁ − 1 being quadratic
    beyond): 2 for relu (He), 2/(1 + 0.2²) for leaky_relu, 1 for tanh, elu and linear, π/4 for erf.
    relu, leaky_relu and linear with σ_b² > 0: None. Their χ₁ does not depend on q and equals the
    length map's slope, so it reaches 1 just where q^l starts to grow without bound.
    Otherwise: the first crossing on a geometric scan of σ_w² over [1e-3, 1e4], refined by brentq;
    None if q* diverges first. Near that divergence elu's and selu's χ₁ tends to 1 from above (the
    negative side fades as q grows), so at a large σ_b² the crossing hides just before it: bisect.
    """
    _check(0.0, bias_variance)
    phi, dphi = activation_functions(activation)
    if bias_variance == 0 and phi(np.zeros(1))[0] == 0:
        return 1.0 / gaussian_expectation(lambda u: dphi(u) ** 2, 0.0)
    if activation in ("relu", "leaky_relu", "linear"):
        return None

    def excess(weight_variance: float) -> float:
        return _chi_1(activation, weight_variance, bias_variance)[1] - 1.0
    below = 1e-3  # χ₁ ≤ σ_w² max φ'² < 1 here for every activation
    for weight_variance in np.geomspace(1e-3, 1e4, 71)[1:]:
        q, chi_1 = _chi_1(activation, float(weight_variance), bias_variance)
        if math.isinf(q):  # q* diverges beyond some σ_w² in (below, here): elu and selu may cross just before
            low, high = below, float(weight_variance)
            for _ in range(60):
                weight_variance = (low + high) / 2
                q, chi_1 = _chi_1(activation, weight_variance, bias_variance)
                if chi_1 >= 1.0 and not math.isinf(q):
                    break
                low, high = (low, weight_variance) if math.isinf(q) else (weight_variance, high)
            else:
                return None
        if chi_1 >= 1.0:  # q* grows with σ_w², so it is finite over [below, here]
            return float(optimize.brentq(excess, below, weight_variance, xtol=1e-13))
        below = float(weight_variance)
    return None


def correlation_trajectory(activation: str, weight_variance: float, bias_variance: float, c0: float, q0: float,
                           depth: int) -> dict[str, list]:
    """The predicted length q^l and correlation c^l of two inputs' pre-activations, l = 0..depth.

    Entry 0 is (q0, c0), e.g. the first hidden layer's measured values, or from the inputs
    x, x': q0 = σ_w² |x|²/n + σ_b², c0 = (σ_w² x·x'/n + σ_b²)/q0 (for |x| = |x'|); entry l is l
    layers further. Both inputs are taken to have length q^l. Where the length overflows a
    float (a chaotic relu net, hundreds of layers deep), the rest is q = inf, c = None.
    """
    _check(weight_variance, bias_variance, q0)
    if not (-1.0 <= c0 <= 1.0 and depth >= 0):
        raise ValueError(f"need -1 <= c0 <= 1 and depth >= 0 (got c0 = {c0}, depth = {depth})")
    qs, cs = [float(q0)], [float(c0)]
    with np.errstate(over="ignore"):  # an overflow is the answer here, not a bug
        for _ in range(depth):
            q, c = qs[-1], cs[-1]
            q_next = length_map(activation, weight_variance, bias_variance, q) if math.isfinite(q) else math.inf
            finite = math.isfinite(q_next)
            cs.append(correlation_map(activation, weight_variance, bias_variance, c, q) if finite else None)
            qs.append(q_next if finite else math.inf)
    return {"layer": list(range(depth + 1)), "q": qs, "c": cs}


def mean_field_table(activation: str, bias_variance: float, weight_variances: Iterable[float] | None = None) -> dict:
    """The phase diagram's cut at one σ_b²: the critical σ_w² and every quantity per σ_w².

    Default grid: 40 σ_w² evenly spaced up to twice the critical one (at least up to 4). Values
    are Python floats, None (undefined, see module docstring) or math.inf, which strict JSON
    lacks: the endpoint must encode it (e.g. app.analysis.export.strict gives "Infinity").
    """
    critical = critical_weight_variance(activation, bias_variance)
    if weight_variances is None:
        weight_variances = np.arange(1, 41) / 40 * max(4.0, 2 * (critical or 0.0))
    rows = [asdict(mean_field(activation, float(w), bias_variance)) for w in weight_variances]
    return {"activation": activation, "bias_variance": float(bias_variance),
            "critical_weight_variance": critical, "points": rows}


def _check(weight_variance: float, bias_variance: float, q: float = 0.0) -> None:
    if not all(v >= 0.0 and math.isfinite(v) for v in (weight_variance, bias_variance, q)):
        raise ValueError(f"σ_w², σ_b² and q must be finite and >= 0 (got {weight_variance}, {bias_variance}, {q})")
