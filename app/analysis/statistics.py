"""Seed-paired statistics: is an initializer's lead real, or the luck of the seeds?

Runs of a study that share a seed see the same data order and the same dropout masks (the
worker derives both from the run's seed alone), so two initializers compared seed by seed
differ only in their initial weights. The per-seed difference removes the seed's own share
of the variance, which with 3-5 seeds is often most of it.

That holds only within one cell of a grid study (same activation, depth and σ_b²): a run of
"custom · tanh · 3 layers" and one of "He normal · relu · 1 layer" share a seed but not a
network, so their difference says nothing about initial weights. Every comparison (the
baseline, the paired differences, the tiers, the ranking) is therefore made cell by cell, each
cell with its own baseline; a study without a grid is one cell.

Which runs count: finished results only, i.e. succeeded or diverged (by status, or a loss that
became NaN/inf). A queued or running run joins when it finishes: a "final" accuracy must be
final, and a pair must compare like with like. Failed and cancelled runs are left out (a
crash or a person stopped them, not the initializer) and counted as excluded.

Diverged runs: the accuracy a diverged network had at its last recorded epoch is a real
outcome (usually chance level), so it counts when it is a finite number; dropping it would
flatter an unstable initializer. A NaN or infinite accuracy is left out, and that seed has no
value, and no pair, for that metric. Nothing non-finite ever reaches a mean or a CI.

Why a paired Student-t test: users have 3-5 seeds, and a verdict must keep its 5 % false-
positive rate there. A bootstrap of 3 values cannot see spread it has not sampled (its CI was
often far narrower than the data allow); the t interval pays for the unknown spread with
n - 1 degrees of freedom, is exact for normal differences at any n >= 2 and conservative for
symmetric heavier tails (tests/analysis/test_statistics_simulation.py measures it). The
verdict and the CI shown come from the same test: p < 0.05 exactly when the 95 % CI excludes 0.

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
from itertools import groupby
from typing import Any

import numpy as np
from scipy import stats

from app.domain.activations import RELU_FAMILY

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8
SEEDS_CAP = 1000
RESULT_STATUSES = ("succeeded", "diverged")
# Accuracies are float32 counts / n: 0.9 may be stored as 0.8999999762. A validation set of
# 10 000 images moves in steps of 1e-4, so this slack never changes a real comparison.
THRESHOLD_SLACK = 1e-6
# Paired differences spread (or a mean) below this are float32 rounding, not a measurement.
ZERO_SPREAD = 1e-6
# Means closer than this are one rank (accuracies are multiples of 1 / samples, so equal
# means are often exactly equal, up to float rounding).
TIE_TOLERANCE = 1e-9
METHOD = ("Paired Student-t test on the per-seed differences (same seed = same data order and dropout): a difference "
          "is called higher or lower only when its two-sided p-value is below 0.05, which is exactly when the 95 % "
          "t interval shown next to it excludes 0; accuracy CIs are 95 % t intervals of the mean over seeds.")
RANKING_RULE = ("Ranks are tiers, not a strict order: the initializer with the highest mean and every one the same "
                "paired t-test cannot tell from it share rank 1, the rest are tiered the same way, and equal means "
                "always share a rank.")
DIVERGED_RULE = ("succeeded and diverged runs count; queued/running runs join when they finish; failed and cancelled "
                 "runs are left out. A diverged run keeps its last finite accuracy (usually chance level); NaN or "
                 "infinite values are left out, so that seed has no value and no pair for that metric.")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def mean_ci(values: Sequence[Any], within: tuple[float, float] = (0.0, 1.0)) -> dict[str, float | int | None]:
    """Mean, sample std (ddof=1) and t interval of the finite values; CI and std null below 2 values.

    The interval is clipped to ``within`` (accuracies: [0, 1]), where the mean must lie: with 2
    seeds t(1) = 12.7 reaches far past it, and cutting off impossible values costs no coverage.
    """
    finite = [float(value) for value in values if _finite(value)]
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


def t_power(n: Any, effect: Any) -> np.ndarray:
    """Power of the two-sided paired t-test at ALPHA with n pairs when mean / sd of the differences is ``effect``."""
    n, effect = np.asarray(n, dtype=float), np.abs(np.asarray(effect, dtype=float))
    crit, shift = stats.t.ppf(1 - ALPHA / 2, n - 1), effect * np.sqrt(n)
    # The wrong-sign tail is below 1e-9 where scipy's nct.cdf gives NaN (large shifts).
    return stats.nct.sf(crit, n - 1, shift) + np.nan_to_num(stats.nct.cdf(-crit, n - 1, shift), nan=0.0)


def seeds_needed(mean: float | None, std: float | None) -> tuple[int | None, bool]:
    """Pairs for POWER if the true difference and spread were the observed ones; (None, True): over SEEDS_CAP.

    (None, False) where it is undefined: no spread or no mean difference. The normal
    approximation is a lower bound (t has fatter tails), so the search starts there.
    """
    if mean is None or not std or abs(mean) <= ZERO_SPREAD:
        return None, False
    effect = abs(mean) / std
    start = max(2, math.floor(((stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)) / effect) ** 2))
    for low in range(start, SEEDS_CAP + 1, 32):
        ns = np.arange(low, min(low + 32, SEEDS_CAP + 1))
        enough = np.flatnonzero(t_power(ns, effect) >= POWER)
        if enough.size:
            return int(ns[enough[0]]), False
    return None, True


def paired_difference(values: Mapping[int, Any], baseline: Mapping[int, Any], is_baseline: bool = False) -> dict[str, Any]:
    """Per seed present (and finite) in both: value - baseline; its mean, t interval, p and verdict.

    verdict: "baseline" (the baseline itself), "too few paired seeds" (under 2: no test),
    "not distinguishable" (p >= 0.05), "higher" or "lower". seeds_needed: see seeds_needed().
    """
    seeds = sorted(seed for seed in values if seed in baseline and _finite(values[seed]) and _finite(baseline[seed]))
    diffs = [float(values[seed]) - float(baseline[seed]) for seed in seeds]
    out: dict[str, Any] = {"mean": float(np.mean(diffs)) if diffs else None, "std": None, "ci_low": None, "ci_high": None,
                           "n": len(diffs), "seeds": seeds, "p_value": None, "test": None, "seeds_needed": None,
                           "seeds_needed_over_cap": False}
    if len(diffs) >= 2:
        found = {key: value[0] for key, value in paired_t(diffs).items()}
        finite_ci = bool(np.isfinite(found["ci_low"]))
        out.update(std=float(found["std"]), ci_low=float(found["ci_low"]) if finite_ci else None,
                   ci_high=float(found["ci_high"]) if finite_ci else None)
        if not is_baseline:
            needed, over = seeds_needed(out["mean"], out["std"])
            out.update(p_value=float(found["p"]), test="sign-flip" if found["flat"] else "paired t",
                       seeds_needed=needed, seeds_needed_over_cap=over)
    if is_baseline:
        verdict, distinguishable = "baseline", None
    elif out["p_value"] is None:
        verdict, distinguishable = "too few paired seeds", None
    elif out["p_value"] >= ALPHA:
        verdict, distinguishable = "not distinguishable", False
    else:
        verdict, distinguishable = ("higher" if out["mean"] > 0 else "lower"), True
    return {**out, "distinguishable": distinguishable, "verdict": verdict}


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
    """Competition ranking (1, 2, 2, 4) by mean alone, highest first: per item (rank, indices with the same mean).

    The order the tiers are built in, and "best ranked" for the baseline; not a verdict.
    """
    scored = sorted((i for i, mean in enumerate(means) if mean is not None), key=lambda i: -means[i])
    out: list[tuple[int | None, list[int]]] = [(None, [])] * len(means)
    for position, i in enumerate(scored):
        ties = [j for j in scored if j != i and abs(means[j] - means[i]) <= TIE_TOLERANCE]
        first = min([position] + [scored.index(j) for j in ties])
        out[i] = (first + 1, ties)
    return out


def tiers(finals: Sequence[Mapping[int, Any]], means: Sequence[float | None]) -> list[tuple[int | None, list[int]]]:
    """Per group (rank, indices sharing it): a rank claims only the order the paired t-test supports.

    Walking down by mean, the first group leads a tier; the next groups join it while the test
    cannot tell them from the leader (too few paired seeds counts as cannot tell). Groups with
    equal means move as one block, joining only if none of them differs from the leader: a
    tie in mean is never split, and no member of a tier is known to be worse than its leader.
    Ranks count the groups in better tiers (1, 1, 3), so a rank is a place, not a tier number.
    """
    by_mean = rank(means)
    scored = sorted((i for i, (r, _) in enumerate(by_mean) if r is not None), key=lambda i: (by_mean[i][0], i))
    found: list[list[int]] = []
    for _, block in groupby(scored, key=lambda i: by_mean[i][0]):
        block = list(block)
        if found and all(paired_difference(finals[j], finals[found[-1][0]])["distinguishable"] is not True for j in block):
            found[-1].extend(block)
        else:
            found.append(block)
    out: list[tuple[int | None, list[int]]] = [(None, [])] * len(means)
    placed = 0
    for tier in found:
        for i in tier:
            out[i] = (placed + 1, [j for j in tier if j != i])
        placed += len(tier)
    return out


def default_baseline(activation: str) -> str:
    """He for the ReLU family (its derivation assumes half the units are off), Glorot otherwise."""
    return "he_normal" if activation in RELU_FAMILY else "glorot_uniform"


def choose_baseline(keys: Sequence[str], initializers: Sequence[str], ranks: Sequence[int | None],
                    requested: str | None, activation: str, choices: Sequence[str] | None = None) -> tuple[str | None, str]:
    """The baseline's key and why it was chosen: the request, the default rule, or the best-ranked.

    keys/initializers/ranks: one per group of one cell. A group exists once the study names
    it, finished runs or not, so the baseline does not jump around while runs finish.
    choices: the groups' initializer keys (id + parameters, without the cell): in a grid
    study a request names the initializer choice, and each cell takes its own group of it.
    """
    choices = list(choices) if choices is not None else list(keys)
    if requested is not None:
        for key, choice in zip(keys, choices):
            if requested in (key, choice):
                return key, "requested"
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
    """Per group: accuracy CIs, paired difference against its cell's baseline, epochs to threshold, rank (tier).

    groups: {"key", "initializer", "runs": [{"seed", "status", "diverged", "rows", "final", "best"}]},
    rows being the run's epochs in order, and in a grid study "cell" (the cell's label, e.g.
    "tanh · 3 layers"), "choice" (the initializer key without the cell: what a requested
    baseline names) and "activation" (the cell's, for its default baseline; else ``activation``).
    threshold: percent, in (0, 100]. The top-level baseline, reason and ranking are the first
    cell's and all cells' in order; a study without a grid has one cell, so they are its own.
    """
    cells: dict[Any, list[int]] = {}
    for i, group in enumerate(groups):
        cells.setdefault(group.get("cell"), []).append(i)
    found = [None] * len(groups)
    summaries = []
    for cell, members in cells.items():
        cell_activation = groups[members[0]].get("activation") or activation
        summary, rows = _cell_statistics([groups[i] for i in members], cell_activation, baseline, threshold)
        summaries.append({"cell": cell, **summary})
        for i, row in zip(members, rows):
            found[i] = {**row, "cell": cell}
    first = summaries[0] if summaries else {"baseline": None, "baseline_reason": "no initializers"}
    return {"baseline": first["baseline"], "baseline_reason": first["baseline_reason"], "requested_baseline": baseline,
            "default_baseline": default_baseline(activation), "threshold": threshold,
            "confidence_level": CONFIDENCE, "method": METHOD, "ranking_rule": RANKING_RULE,
            "diverged_rule": DIVERGED_RULE, "ranking": [key for summary in summaries for key in summary["ranking"]],
            "cells": summaries, "groups": found}


def _cell_statistics(groups: Sequence[Mapping[str, Any]], activation: str, baseline: str | None,
                     threshold: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One cell's baseline, reason and ranking, and its groups' statistics (see study_statistics)."""
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
    means = [a["final"]["mean"] for a in accuracy]
    ranks = tiers([g["final"] for g in per_group], means)
    keys = [g["key"] for g in groups]
    by_mean = [r for r, _ in rank(means)]
    chosen, reason = choose_baseline(keys, [g["initializer"] for g in groups], by_mean, baseline, activation,
                                     [g.get("choice", g["key"]) for g in groups])
    base = per_group[keys.index(chosen)] if chosen is not None else None
    out = []
    for group, g, acc, (position, ties) in zip(groups, per_group, accuracy, ranks):
        difference = {
            f"{metric}_val_accuracy": paired_difference(g[metric], base[metric] if base else {}, g is base)
            for metric in ("final", "best")}
        reached = {run["seed"]: epochs_to_threshold(run["rows"], threshold / 100) for run in g["used"]}
        out.append({
            "key": g["key"], "choice": group.get("choice", g["key"]), "baseline": chosen, "rank": position,
            "tied_with": [keys[j] for j in ties], **g["counts"],
            "final_val_accuracy": acc["final"], "best_val_accuracy": acc["best"],
            "difference": difference, "epochs_to_threshold": threshold_summary(reached),
        })
    ranked = sorted((i for i, (r, _) in enumerate(ranks) if r is not None), key=lambda i: (ranks[i][0], by_mean[i], i))
    return ({"baseline": chosen, "baseline_reason": reason, "default_baseline": default_baseline(activation),
             "ranking": [keys[i] for i in ranked]}, out)
