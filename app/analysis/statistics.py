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

The tests themselves (paired t, Holm, sign-flip, power) live in app/analysis/paired.py.

The baseline itself never looks at the data: the request, else the activation's default, else
the first initializer in the study's own order (picking the best-ranked one would compare the
others with a winner chosen by luck, and turned 5 % into 7-10 %).

Ranks (tiers) come from all pairs of a cell, on the seeds every ranked initializer of the cell
has a finite final accuracy for, so the ranking means and the tests use the same runs and a
tier never contradicts a test; their p-values are Holm-adjusted over all pairs of the cell.
The rule is RANKING_RULE, word for word (tiers()).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from app.analysis.paired import (  # noqa: F401  (the tests, re-exported: statistics is what callers import)
    ALPHA, CONFIDENCE, POWER, SEEDS_CAP, ZERO_SPREAD, is_finite, adjust_verdicts, holm, mean_ci, paired_difference,
    paired_t, seeds_needed, t_power,
)
from app.domain.activations import RELU_FAMILY

RESULT_STATUSES = ("succeeded", "diverged")
# Accuracies are float32 counts / n: 0.9 may be stored as 0.8999999762. A validation set of
# 10 000 images moves in steps of 1e-4, so this slack never changes a real comparison.
THRESHOLD_SLACK = 1e-6
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


def epochs_to_threshold(rows: Sequence[Mapping[str, Any]], threshold: float) -> int | None:
    """The first epoch whose validation accuracy reaches ``threshold`` (a fraction); None: never."""
    for row in rows:
        value = row.get("val_accuracy")
        if is_finite(value) and value >= threshold - THRESHOLD_SLACK:
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
    sets = [{seed for seed, value in f.items() if is_finite(value)} for f in finals]
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
    ranked = [i for i, f in enumerate(finals) if any(is_finite(v) for v in f.values())]
    values = {i: [float(finals[i][s]) for s in seeds] if seeds else
              [float(v) for v in finals[i].values() if is_finite(v)] for i in ranked}
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
    left_out = sum(is_finite(value) and seed not in seeds for g in per_group for seed, value in g["final"].items())
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
