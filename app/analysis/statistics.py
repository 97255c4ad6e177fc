"""Seed-paired statistics: is an initializer's lead real, or the luck of the seeds?

Runs of a study that share a seed see the same data order and the same dropout masks (the
worker derives both from the run's seed alone), so two initializers compared seed by seed
differ only in their initial weights. The per-seed difference removes the seed's own share
of the variance, which with 3-5 seeds is often most of it; its bootstrap CI says whether the
gap survives resampling the seeds.

Which runs count: finished results only, i.e. succeeded or diverged (by status, or a loss that
became NaN/inf). A queued or running run joins when it finishes: a "final" accuracy must be
final, and a pair must compare like with like. Failed and cancelled runs are left out (a
crash or a person stopped them, not the initializer) and counted as excluded.

Diverged runs: the accuracy a diverged network had at its last recorded epoch is a real
outcome (usually chance level), so it counts when it is a finite number; dropping it would
flatter an unstable initializer. A NaN or infinite accuracy is left out, and that seed has no
value, and no pair, for that metric. Nothing non-finite ever reaches a mean or a CI.

CIs are 95 % BCa bootstrap intervals of the mean over seeds (scipy.stats.bootstrap, 9999
resamples, a fixed seed so an answer repeats), percentile where BCa is undefined, [v, v]
when every value is v, and null below 2 values. With 3 seeds there are only 10 distinct
resamples: the interval is a rough guide, not a test.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 9999
BOOTSTRAP_SEED = 20240601
RESULT_STATUSES = ("succeeded", "diverged")
RELU_FAMILY = ("relu", "leaky_relu", "elu", "gelu", "swish", "silu", "relu6")
# Accuracies are float32 counts / n: 0.9 may be stored as 0.8999999762. A validation set of
# 10 000 images moves in steps of 1e-4, so this slack never changes a real comparison.
THRESHOLD_SLACK = 1e-6
# Means closer than this are one rank (accuracies are multiples of 1 / samples, so equal
# means are often exactly equal, up to float rounding).
TIE_TOLERANCE = 1e-9
METHOD = (f"{CONFIDENCE:.0%} BCa bootstrap of the mean over seeds (scipy.stats.bootstrap, {RESAMPLES} resamples, "
          "fixed seed); differences paired by seed (same seed = same data order and dropout)")
DIVERGED_RULE = ("succeeded and diverged runs count; queued/running runs join when they finish; failed and cancelled "
                 "runs are left out. A diverged run keeps its last finite accuracy (usually chance level); NaN or "
                 "infinite values are left out, so that seed has no value and no pair for that metric.")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@lru_cache(maxsize=8192)
def _interval(values: tuple[float, ...]) -> tuple[float, float]:
    """The bootstrap CI of the mean; cached because a finished study asks the same question on every view."""
    data = np.asarray(values, dtype=float)
    if np.ptp(data) == 0:
        return float(data[0]), float(data[0])  # no spread to resample: BCa would divide by zero
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's DegenerateDataWarning: the NaN is handled below
            found = stats.bootstrap((data,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                                    method=method, rng=np.random.default_rng(BOOTSTRAP_SEED)).confidence_interval
        low, high = float(found.low), float(found.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high
    return float(data.min()), float(data.max())  # unreachable in practice: percentile is always defined


def mean_ci(values: Sequence[Any]) -> dict[str, float | int | None]:
    """Mean, sample std (ddof=1) and bootstrap CI of the finite values; CI and std null below 2 values."""
    finite = [float(value) for value in values if _finite(value)]
    if not finite:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None, "n": 0}
    # Equal values are their own mean exactly (np.mean of three 0.8s is 0.8000000000000002).
    mean = finite[0] if min(finite) == max(finite) else float(np.mean(finite))
    if len(finite) < 2:
        return {"mean": mean, "std": None, "ci_low": None, "ci_high": None, "n": 1}
    low, high = _interval(tuple(finite))
    # The CI brackets the mean it is about (BCa can miss it by a rounding error).
    std = 0.0 if min(finite) == max(finite) else float(np.std(finite, ddof=1))
    return {"mean": mean, "std": std, "ci_low": min(low, mean), "ci_high": max(high, mean),
            "n": len(finite)}


def paired_difference(values: Mapping[int, Any], baseline: Mapping[int, Any], is_baseline: bool = False) -> dict[str, Any]:
    """Per seed present (and finite) in both: value - baseline; its mean, CI and what the CI says.

    verdict: "baseline" (the baseline itself), "too few paired seeds" (under 2: no CI),
    "not distinguishable" (the CI includes 0), "higher" or "lower".
    """
    seeds = sorted(seed for seed in values if seed in baseline and _finite(values[seed]) and _finite(baseline[seed]))
    found = mean_ci([float(values[seed]) - float(baseline[seed]) for seed in seeds])
    if is_baseline:
        verdict, distinguishable = "baseline", None
    elif found["ci_low"] is None:
        verdict, distinguishable = "too few paired seeds", None
    elif found["ci_low"] <= 0 <= found["ci_high"]:
        verdict, distinguishable = "not distinguishable", False
    else:
        verdict, distinguishable = ("higher" if found["ci_low"] > 0 else "lower"), True
    return {**found, "seeds": seeds, "distinguishable": distinguishable, "verdict": verdict}


def epochs_to_threshold(rows: Sequence[Mapping[str, Any]], threshold: float) -> int | None:
    """The first epoch whose validation accuracy reaches ``threshold`` (a fraction); None: never."""
    for row in rows:
        value = row.get("val_accuracy")
        if _finite(value) and value >= threshold - THRESHOLD_SLACK:
            return int(row["epoch"])
    return None


def threshold_summary(per_seed: Mapping[int, int | None]) -> dict[str, Any]:
    """Over the seeds: how many reached the threshold, and the mean/min/max epoch among those that did."""
    reached = [epoch for epoch in per_seed.values() if epoch is not None]
    return {
        "runs": len(per_seed), "reached": len(reached),
        "mean": float(np.mean(reached)) if reached else None,
        "min": min(reached) if reached else None, "max": max(reached) if reached else None,
        "per_seed": [{"seed": seed, "epoch": epoch} for seed, epoch in sorted(per_seed.items())],
    }


def rank(means: Sequence[float | None]) -> list[tuple[int | None, list[int]]]:
    """Competition ranking (1, 2, 2, 4) by mean, highest first: per item (rank, indices it ties with)."""
    scored = sorted((i for i, mean in enumerate(means) if mean is not None), key=lambda i: -means[i])
    out: list[tuple[int | None, list[int]]] = [(None, [])] * len(means)
    for position, i in enumerate(scored):
        ties = [j for j in scored if j != i and abs(means[j] - means[i]) <= TIE_TOLERANCE]
        first = min([position] + [scored.index(j) for j in ties])
        out[i] = (first + 1, ties)
    return out


def default_baseline(activation: str) -> str:
    """He for the ReLU family (its derivation assumes half the units are off), Glorot otherwise."""
    return "he_normal" if activation in RELU_FAMILY else "glorot_uniform"


def choose_baseline(keys: Sequence[str], initializers: Sequence[str], ranks: Sequence[int | None],
                    requested: str | None, activation: str) -> tuple[str | None, str]:
    """The baseline's key and why it was chosen: the request, the default rule, or the best-ranked.

    keys/initializers/ranks: one per group of the study. A group exists once the study names
    it, finished runs or not, so the baseline does not jump around while runs finish.
    """
    if requested is not None and requested in keys:
        return requested, "requested"
    default = default_baseline(activation)
    missing = f"{requested!r} is not in this study; " if requested is not None else ""
    for key, initializer in zip(keys, initializers):
        if key == default or initializer == default:
            return key, f"{missing}default for {activation}: {default}"
    ranked = [(r, i) for i, r in enumerate(ranks) if r is not None]
    if ranked:
        return keys[min(ranked)[1]], f"{missing}{default} (default for {activation}) is not in this study: best ranked"
    if keys:
        return keys[0], f"{missing}{default} (default for {activation}) is not in this study and no run has finished: first"
    return None, "no initializers"


def counts_as_result(status: str, diverged: bool) -> bool:
    """A finished outcome of the initializer (see the module docstring)."""
    return status in RESULT_STATUSES or (diverged and status not in ("queued", "running", "cancelled"))


def study_statistics(groups: Sequence[Mapping[str, Any]], activation: str, baseline: str | None,
                     threshold: float) -> dict[str, Any]:
    """Per group: accuracy CIs, paired difference against the baseline, epochs to threshold, rank.

    groups: {"key", "initializer", "runs": [{"seed", "status", "diverged", "rows", "final", "best"}]},
    rows being the run's epochs in order. threshold: percent, in (0, 100].
    """
    per_group = []
    for group in groups:
        used = [run for run in group["runs"] if counts_as_result(run["status"], run["diverged"])]
        active = sum(run["status"] in ("queued", "running") for run in group["runs"])
        per_group.append({
            "key": group["key"], "used": used,
            "final": {run["seed"]: run["final"] for run in used}, "best": {run["seed"]: run["best"] for run in used},
            "counts": {"runs": len(group["runs"]), "used": len(used), "active": active,
                       "excluded": len(group["runs"]) - len(used) - active,
                       "diverged": sum(bool(run["diverged"]) for run in used)},
        })
    accuracy = [{metric: mean_ci(list(g[metric].values())) for metric in ("final", "best")} for g in per_group]
    ranks = rank([a["final"]["mean"] for a in accuracy])
    keys = [g["key"] for g in groups]
    chosen, reason = choose_baseline(keys, [g["initializer"] for g in groups], [r for r, _ in ranks], baseline, activation)
    base = per_group[keys.index(chosen)] if chosen is not None else None
    out = []
    for g, acc, (position, ties) in zip(per_group, accuracy, ranks):
        difference = {
            f"{metric}_val_accuracy": paired_difference(g[metric], base[metric] if base else {}, g is base)
            for metric in ("final", "best")}
        reached = {run["seed"]: epochs_to_threshold(run["rows"], threshold / 100) for run in g["used"]}
        out.append({
            "key": g["key"], "rank": position, "tied_with": [keys[j] for j in ties], **g["counts"],
            "final_val_accuracy": acc["final"], "best_val_accuracy": acc["best"],
            "difference": difference, "epochs_to_threshold": threshold_summary(reached),
        })
    return {"baseline": chosen, "baseline_reason": reason, "requested_baseline": baseline,
            "default_baseline": default_baseline(activation), "threshold": threshold,
            "confidence_level": CONFIDENCE, "method": METHOD, "diverged_rule": DIVERGED_RULE,
            "ranking": [keys[i] for i in sorted((i for i, (r, _) in enumerate(ranks) if r is not None),
                                                key=lambda i: (ranks[i][0], i))],
            "groups": out}
