"""Seed-paired tests of one difference, and their adjustment over a cell's comparisons.

Why a paired Student-t test: users have 3-5 seeds, and a verdict must keep its 5 % false-
positive rate there. A bootstrap of 3 values cannot see spread it has not sampled (its CI was
often far narrower than the data allow); the t interval pays for the unknown spread with
n - 1 degrees of freedom, is exact for normal differences at any n >= 2 and conservative for
symmetric heavier tails (tests/analysis/test_statistics_simulation.py measures it). The
verdict and the CI shown come from the same test: p < 0.05 exactly when the 95 % CI excludes 0.

Several comparisons in one cell: each comparison with the baseline holds 5 % on its own, but
with k initializers the chance that at least one of the k - 1 says "higher" or "lower" by luck
grows (14 % at k = 4, 27 % at k = 8). The verdicts therefore use Holm's step-down adjustment
of the p-values over the comparisons with the baseline in the cell (per metric), which keeps
that family-wise rate at 5 %; the raw p and the unadjusted 95 % t interval are reported too.

No spread (every paired difference equal, within rounding of stored float32 accuracies): the
t statistic is undefined. Accuracies are multiples of 1 / validation samples, so equal
differences happen by chance with small noise, and calling them real would break the error
rate at 2-3 seeds. They fall back to the exact sign-flip test, valid for any symmetric
distribution, discrete included: p = 1 when all are 0, else 2 / 2^n, which rejects only from
6 seeds on; its CI is then [d, d], and null below 6 seeds (no value could be rejected).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8
SEEDS_CAP = 1000
# Paired differences spread (or a mean) below this are float32 rounding, not a measurement.
ZERO_SPREAD = 1e-6


def is_finite(value: Any) -> bool:
    """A real number (not a bool), neither NaN nor infinite: what a mean, a pair or a rank may use."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def mean_ci(values: Sequence[Any], within: tuple[float, float] = (0.0, 1.0)) -> dict[str, float | int | None]:
    """Mean, sample std (ddof=1) and t interval of the finite values; CI and std null below 2 values.

    The interval is clipped to ``within`` (accuracies: [0, 1]), where the mean must lie: with 2
    seeds t(1) = 12.7 reaches far past it, and cutting off impossible values costs no coverage.
    """
    finite = [float(value) for value in values if is_finite(value)]
    if not finite:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None, "n": 0}
    # Equal values are their own mean exactly (np.mean of three 0.8s is 0.8000000000000002).
    mean = finite[0] if min(finite) == max(finite) else float(np.mean(finite))
    n = len(finite)
    if n < 2:
        return {"mean": mean, "std": None, "ci_low": None, "ci_high": None, "n": 1}
    std = 0.0 if min(finite) == max(finite) else float(np.std(finite, ddof=1))
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci_low": max(mean - half, within[0]), "ci_high": min(mean + half, within[1]),
            "n": n}


def paired_t(differences: Any) -> dict[str, np.ndarray]:
    """The test behind every verdict, vectorised over rows (one row = one comparison's n >= 2 differences).

    Returns per row: mean, std (0 with no spread), ci_low/ci_high (NaN where undefined), p,
    flat (no spread: the sign-flip fallback of the module docstring), sign (+1 higher, -1
    lower, 0 not distinguishable). The simulation test runs this on thousands of rows at once.
    """
    d = np.atleast_2d(np.asarray(differences, dtype=float))
    n = d.shape[1]
    if n < 2:
        raise ValueError("a paired t-test needs at least 2 differences")
    mean = d.mean(axis=1)
    flat = np.ptp(d, axis=1) <= ZERO_SPREAD
    std = np.where(flat, 0.0, d.std(axis=1, ddof=1))
    se = np.where(flat, 1.0, std) / math.sqrt(n)
    t_p = 2 * stats.t.sf(np.abs(mean) / se, n - 1)
    flip_p = np.where(np.abs(mean) <= ZERO_SPREAD, 1.0, 2.0 ** (1 - n))
    p = np.where(flat, flip_p, t_p)
    half = np.where(flat, np.where(2.0 ** (1 - n) < ALPHA, 0.0, np.nan), float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * se)
    sign = np.where(p < ALPHA, np.sign(mean), 0.0)
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "p": p, "flat": flat, "sign": sign}


def holm(p: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values along the last axis (one family per row); NaN: not tested, left out.

    With m tested p-values sorted p(1) <= ... <= p(m): adjusted p(j) = max over i <= j of min(1, (m - i + 1) p(i)).
    "adjusted p < ALPHA" keeps the chance of any false call in the family at ALPHA, whatever the
    dependence between the tests (Holm 1979); with one test it is the raw p.
    """
    p = np.asarray(p, dtype=float)
    if p.size == 0:
        return p.copy()
    order = np.argsort(p, axis=-1)  # NaN last
    ordered = np.take_along_axis(p, order, axis=-1)
    m = np.sum(~np.isnan(p), axis=-1, keepdims=True)
    scaled = np.minimum(1.0, (m - np.arange(p.shape[-1])) * ordered)
    stepped = np.fmax.accumulate(scaled, axis=-1)
    out = np.empty_like(p)
    np.put_along_axis(out, order, stepped, axis=-1)
    return np.where(np.isnan(p), np.nan, out)


def t_power(n: Any, effect: Any, alpha: float = ALPHA) -> np.ndarray:
    """Power of the two-sided paired t-test at ``alpha`` with n pairs when mean / sd of the differences is ``effect``."""
    n, effect = np.asarray(n, dtype=float), np.abs(np.asarray(effect, dtype=float))
    crit, shift = stats.t.ppf(1 - alpha / 2, n - 1), effect * np.sqrt(n)
    # The wrong-sign tail is below 1e-9 where scipy's nct.cdf gives NaN (large shifts).
    return stats.nct.sf(crit, n - 1, shift) + np.nan_to_num(stats.nct.cdf(-crit, n - 1, shift), nan=0.0)


def seeds_needed(mean: float | None, std: float | None, comparisons: int = 1) -> tuple[int | None, bool]:
    """Pairs for POWER if the true difference and spread were the observed ones; (None, True): over SEEDS_CAP.

    (None, False) where it is undefined: no spread or no mean difference. The normal
    approximation is a lower bound (t has fatter tails), so the search starts there.
    With several ``comparisons`` in the cell the verdict is Holm-adjusted, so the count is for
    a test at ALPHA / comparisons: Holm rejects whatever that Bonferroni test rejects, so the
    adjusted verdict finds the gap at least POWER of the time (an unadjusted count fell short:
    tests/analysis/test_statistics_simulation.py).
    """
    if mean is None or not std or abs(mean) <= ZERO_SPREAD:
        return None, False
    effect, alpha = abs(mean) / std, ALPHA / max(1, comparisons)
    start = max(2, math.floor(((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER)) / effect) ** 2))
    for low in range(start, SEEDS_CAP + 1, 32):
        ns = np.arange(low, min(low + 32, SEEDS_CAP + 1))
        enough = np.flatnonzero(t_power(ns, effect, alpha) >= POWER)
        if enough.size:
            return int(ns[enough[0]]), False
    return None, True


def paired_difference(values: Mapping[int, Any], baseline: Mapping[int, Any], is_baseline: bool = False) -> dict[str, Any]:
    """Per seed present (and finite) in both: value - baseline; its mean, t interval, p and verdict.

    verdict: "baseline" (the baseline itself), "too few paired seeds" (under 2: no test),
    "not distinguishable" (p >= 0.05), "higher" or "lower". seeds_needed: see seeds_needed().
    Alone it is one comparison (p_adjusted = p_value, comparisons = 1); in a cell,
    adjust_verdicts() Holm-adjusts the cell's comparisons and re-judges them.
    """
    seeds = sorted(seed for seed in values if seed in baseline and is_finite(values[seed]) and is_finite(baseline[seed]))
    diffs = [float(values[seed]) - float(baseline[seed]) for seed in seeds]
    out: dict[str, Any] = {"mean": float(np.mean(diffs)) if diffs else None, "std": None, "ci_low": None, "ci_high": None,
                           "n": len(diffs), "seeds": seeds, "p_value": None, "p_adjusted": None, "comparisons": 0,
                           "test": None, "seeds_needed": None, "seeds_needed_over_cap": False}
    if len(diffs) >= 2:
        found = {key: value[0] for key, value in paired_t(diffs).items()}
        finite_ci = bool(np.isfinite(found["ci_low"]))
        out.update(std=float(found["std"]), ci_low=float(found["ci_low"]) if finite_ci else None,
                   ci_high=float(found["ci_high"]) if finite_ci else None)
        if not is_baseline:
            needed, over = seeds_needed(out["mean"], out["std"])
            out.update(p_value=float(found["p"]), p_adjusted=float(found["p"]), comparisons=1,
                       test="sign-flip" if found["flat"] else "paired t", seeds_needed=needed, seeds_needed_over_cap=over)
    return _judge(out, is_baseline)


def _judge(out: dict[str, Any], is_baseline: bool = False) -> dict[str, Any]:
    """The verdict from the (adjusted) p-value."""
    if is_baseline:
        verdict, distinguishable = "baseline", None
    elif out["p_adjusted"] is None:
        verdict, distinguishable = "too few paired seeds", None
    elif out["p_adjusted"] >= ALPHA:
        verdict, distinguishable = "not distinguishable", False
    else:
        verdict, distinguishable = ("higher" if out["mean"] > 0 else "lower"), True
    return {**out, "distinguishable": distinguishable, "verdict": verdict}


def adjust_verdicts(differences: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One cell's comparisons with its baseline (one metric): p_adjusted by Holm over those with a p-value,
    comparisons = how many, the verdicts re-judged on the adjusted p, and seeds_needed for that adjusted test."""
    tested = [i for i, d in enumerate(differences) if d["p_value"] is not None]
    adjusted = holm([differences[i]["p_value"] for i in tested])
    out = [dict(d) for d in differences]
    for i, p in zip(tested, adjusted):
        needed, over = seeds_needed(out[i]["mean"], out[i]["std"], len(tested))
        out[i].update(p_adjusted=float(p), comparisons=len(tested), seeds_needed=needed, seeds_needed_over_cap=over)
    return [_judge(d, d["verdict"] == "baseline") for d in out]
