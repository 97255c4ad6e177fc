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

Several comparisons in one cell: each comparison with the baseline holds 5 % on its own, but
with k initializers the chance that at least one of the k - 1 says "higher" or "lower" by luck
grows (14 % at k = 4, 27 % at k = 8). The verdicts therefore use Holm's step-down adjustment
of the p-values over the comparisons with the baseline in the cell (per metric), which keeps
that family-wise rate at 5 %; the raw p and the unadjusted 95 % t interval are reported too.
The baseline itself never looks at the data: the request, else the activation's default, else
the first initializer in the study's own order (picking the best-ranked one would compare the
others with a winner chosen by luck, and turned 5 % into 7-10 %).

Ranks (tiers) come from all pairs of a cell, on the seeds every ranked initializer of the cell
has a finite final accuracy for, so the ranking means and the tests use the same runs and a
tier never contradicts a test; their p-values are Holm-adjusted over all pairs of the cell.
The rule is RANKING_RULE, word for word (tiers()).

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
          "is called higher or lower only when its two-sided p-value, Holm-adjusted over the comparisons with the "
          "baseline in its cell, is below 0.05, so the chance of any false verdict in a cell stays at 5 %; "
          "the raw p and the unadjusted 95 % t interval are shown too, and accuracy CIs are 95 % t intervals of the "
          "mean over seeds.")
RANKING_RULE = ("Ranks are tiers, not a strict order, on the seeds every ranked initializer of the cell has finished: "
                "the highest mean (all of them, if tied) and every initializer the paired t-test, Holm-adjusted over "
                "all pairs in the cell, cannot tell from one of them share rank 1, as does any with the same mean as "
                "one already there; the rest are ranked the same way among themselves, and initializers that share a "
                "rank may still differ from each other.")
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
    Alone it is one comparison (p_adjusted = p_value, comparisons = 1); in a cell,
    adjust_verdicts() Holm-adjusts the cell's comparisons and re-judges them.
    """
    seeds = sorted(seed for seed in values if seed in baseline and _finite(values[seed]) and _finite(baseline[seed]))
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
    comparisons = how many, and the verdicts re-judged on the adjusted p."""
    tested = [i for i, d in enumerate(differences) if d["p_value"] is not None]
    adjusted = holm([differences[i]["p_value"] for i in tested])
    out = [dict(d) for d in differences]
    for i, p in zip(tested, adjusted):
        out[i].update(p_adjusted=float(p), comparisons=len(tested))
    return [_judge(d, d["verdict"] == "baseline") for d in out]


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

    A plain order by mean; not a verdict (tiers() decides the ranks).
    """
    scored = sorted((i for i, mean in enumerate(means) if mean is not None), key=lambda i: -means[i])
    out: list[tuple[int | None, list[int]]] = [(None, [])] * len(means)
    for position, i in enumerate(scored):
        ties = [j for j in scored if j != i and abs(means[j] - means[i]) <= TIE_TOLERANCE]
        first = min([position] + [scored.index(j) for j in ties])
        out[i] = (first + 1, ties)
    return out


def ranking_seeds(finals: Sequence[Mapping[int, Any]]) -> list[int]:
    """The seeds every group with a finite value has a finite value for: what ranks and leads are computed on."""
    sets = [{seed for seed, value in f.items() if _finite(value)} for f in finals]
    sets = [found for found in sets if found]
    return sorted(set.intersection(*sets)) if sets else []


def _mean(values: Sequence[float]) -> float:
    return values[0] if min(values) == max(values) else float(np.mean(values))


def tiers(finals: Sequence[Mapping[int, Any]]) -> dict[str, Any]:
    """Ranks as RANKING_RULE says, word for word, one cell's groups at a time.

    On the seeds every ranked group (one with a finite value) has (ranking_seeds): each group's
    mean over them, and a paired test of every pair of groups, Holm-adjusted over all the pairs
    (under 2 common seeds there is no test, and no pair is told apart). Then, among the groups
    not placed yet: the highest mean and every group at it lead; every group not told apart from
    one of the leaders joins; any group with the same mean as a member joins (repeated until
    none does). Ranks count the groups in better tiers (1, 1, 3), so a rank is a place.

    Returns "ranks" (per group (rank, indices sharing it); (None, []) unranked), "means" (the
    ranking means; a group's own mean when no seed is common), "seeds" (the common seeds) and
    "differs" (per group the indices the adjusted test tells apart from it).
    """
    seeds = ranking_seeds(finals)
    ranked = [i for i, f in enumerate(finals) if any(_finite(v) for v in f.values())]
    values = {i: [float(finals[i][s]) for s in seeds] if seeds else
              [float(v) for v in finals[i].values() if _finite(v)] for i in ranked}
    means: list[float | None] = [_mean(values[i]) if i in values else None for i in range(len(finals))]
    differs: list[set[int]] = [set() for _ in finals]
    pairs = [(i, j) for a, i in enumerate(ranked) for j in ranked[a + 1:]]
    if pairs and len(seeds) >= 2:
        found = paired_t([[values[i][s] - values[j][s] for s in range(len(seeds))] for i, j in pairs])
        for (i, j), p in zip(pairs, holm(found["p"])):
            if p < ALPHA:
                differs[i].add(j)
                differs[j].add(i)
    remaining = sorted(ranked, key=lambda i: (-means[i], i))
    out: list[tuple[int | None, list[int]]] = [(None, [])] * len(finals)
    placed = 0
    while remaining:
        top = means[remaining[0]]
        leaders = [i for i in remaining if abs(means[i] - top) <= TIE_TOLERANCE]
        tier = leaders + [i for i in remaining if i not in leaders and any(t not in differs[i] for t in leaders)]
        grown = True
        while grown:
            more = [i for i in remaining if i not in tier and any(abs(means[i] - means[t]) <= TIE_TOLERANCE for t in tier)]
            tier += more
            grown = bool(more)
        tier.sort(key=lambda i: (-means[i], i))
        for i in tier:
            out[i] = (placed + 1, [j for j in tier if j != i])
        placed += len(tier)
        remaining = [i for i in remaining if i not in tier]
    return {"ranks": out, "means": means, "seeds": seeds, "differs": [sorted(d) for d in differs]}


def default_baseline(activation: str) -> str:
    """He for the ReLU family (its derivation assumes half the units are off), Glorot otherwise."""
    return "he_normal" if activation in RELU_FAMILY else "glorot_uniform"


def choose_baseline(keys: Sequence[str], initializers: Sequence[str], requested: str | None, activation: str,
                    choices: Sequence[str] | None = None) -> tuple[str | None, str]:
    """The baseline's key and why it was chosen: the request, the default rule, or the first in the study's order.

    Never the data: a baseline picked for its results (the best-ranked) makes every comparison
    with it a comparison with a winner chosen by luck (module docstring).
    keys/initializers: one per group of one cell, in the study's own order. A group exists once the study names
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
    if keys:
        return keys[0], f"{missing}{default} (default for {activation}) is not in this study: the first in its order"
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
    tiered = tiers([g["final"] for g in per_group])
    ranks, means = tiered["ranks"], tiered["means"]
    keys = [g["key"] for g in groups]
    chosen, reason = choose_baseline(keys, [g["initializer"] for g in groups], baseline, activation,
                                     [g.get("choice", g["key"]) for g in groups])
    base = per_group[keys.index(chosen)] if chosen is not None else None
    differences = {metric: adjust_verdicts([paired_difference(g[metric], base[metric] if base else {}, g is base)
                                            for g in per_group]) for metric in ("final", "best")}
    out = []
    for i, (group, g, acc, (position, ties)) in enumerate(zip(groups, per_group, accuracy, ranks)):
        reached = {run["seed"]: epochs_to_threshold(run["rows"], threshold / 100) for run in g["used"]}
        out.append({
            "key": g["key"], "choice": group.get("choice", g["key"]), "baseline": chosen, "rank": position,
            "tied_with": [keys[j] for j in ties], "rank_mean": means[i],
            "differs_from": [keys[j] for j in tiered["differs"][i]], **g["counts"],
            "final_val_accuracy": acc["final"], "best_val_accuracy": acc["best"],
            "difference": {f"{metric}_val_accuracy": differences[metric][i] for metric in ("final", "best")},
            "epochs_to_threshold": threshold_summary(reached),
        })
    ranked = sorted((i for i, (r, _) in enumerate(ranks) if r is not None), key=lambda i: (ranks[i][0], -means[i], i))
    seeds = tiered["seeds"]
    left_out = sum(_finite(value) and seed not in seeds for g in per_group for seed, value in g["final"].items())
    if not ranked:
        note = None
    elif not seeds:
        note = ("no seed is finished by every ranked initializer of this cell: ranks use each one's own mean, "
                "and nothing is tested")
    elif left_out:
        note = (f"ranked on seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}, the ones every ranked "
                f"initializer of this cell has finished; {left_out} other finished run{'s' if left_out > 1 else ''} "
                f"left out of the ranks and the lead (not of the rest of the table)")
    else:
        note = None
    return ({"baseline": chosen, "baseline_reason": reason, "default_baseline": default_baseline(activation),
             "ranking": [keys[i] for i in ranked], "ranking_seeds": seeds, "ranking_note": note}, out)
