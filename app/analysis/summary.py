"""Seed aggregation and the per-initializer verdict: what the study page's table and curves say.

A study trains every initializer once per seed. The page shows each initializer as one line
(the mean over seeds) inside a band (min-max or +-1 std), and a table of final and best
validation accuracy as mean +- std over seeds. Non-finite values are a result (the run
diverged), never an error: they are left out of means and bands, and the run is flagged.

A diverged run's finite values (its last finite accuracy, usually chance level) stay in the
means, as in the seed-paired statistics (app/analysis/statistics.py): dropping them would let
an initializer that diverges on most seeds look as good as its lucky ones. The std is the
sample standard deviation (ddof=1), the one the t intervals use, so the table and the
statistics give one number for one quantity; one value has no spread (null).

Who leads is decided per grid cell (a study without a grid is one cell), since groups of
different cells differ in more than their initial weights; and only where a lead is a finding:
not from runs that all diverged, and not between equal means (9.8 % against 9.8 % at chance).
The lead is the statistics' rank 1 top: the highest mean over the same runs the tests use
(succeeded or diverged, finite; failed, cancelled and unfinished runs left out) and over the
seeds every such group of the cell has (statistics.ranking_seeds), so the table's leader and the
seed-paired ranks never point opposite ways. The table's own means are over every run with an
epoch, a running one's latest included (they describe the curves); the lead is not read off them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from app.analysis.statistics import TIE_TOLERANCE, counts_as_result, ranking_seeds
from app.domain.registry import format_param

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def initializer_key(initializer: str, params: dict[str, Any] | None) -> str:
    """One key per initializer choice: the same id with two different stddevs is two groups."""
    if not params:
        return initializer
    return f"{initializer}({','.join(f'{name}={format_param(params[name])}' for name in sorted(params))})"


def group_key(initializer: str, params: dict[str, Any] | None, activation: str | None = None,
              depth: int | None = None, bias_variance: float | None = None) -> str:
    """The study page's group: one initializer choice, in one cell of a grid study (if any); in a
    weight-variance sweep the σ_w² is the choice's scale and σ_b² a part of the key."""
    return (initializer_key(initializer, params) + (f"|{activation}" if activation else "") + (f"|d{depth}" if depth else "")
            + (f"|b{format_param(bias_variance)}" if bias_variance is not None else ""))


def mean_std(values: Iterable[Any]) -> dict[str, float | int | None]:
    """Mean and sample std (ddof=1; null for one value) of the finite values, and how many there were."""
    finite = [float(value) for value in values if is_finite(value)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    if min(finite) == max(finite):  # equal values are their own mean, exactly (a tie stays a tie)
        return {"mean": finite[0], "std": 0.0 if len(finite) > 1 else None, "n": len(finite)}
    mean = sum(finite) / len(finite)
    std = math.sqrt(sum((value - mean) ** 2 for value in finite) / (len(finite) - 1))
    return {"mean": mean, "std": std, "n": len(finite)}


def aggregate(series: Sequence[dict[int, Any]], epochs: Sequence[int]) -> dict[str, list]:
    """Per epoch, over the runs that have a finite value there: mean, std, min, max and n.

    series: one {epoch: value} per run. Runs may stop at different epochs (one still
    training, one cancelled); each epoch is aggregated over the runs that reached it.
    """
    out: dict[str, list] = {"mean": [], "std": [], "min": [], "max": [], "n": []}
    for epoch in epochs:
        values = [run[epoch] for run in series if is_finite(run.get(epoch))]
        stats = mean_std(values)
        out["mean"].append(stats["mean"])
        out["std"].append(stats["std"])
        out["min"].append(min(values) if values else None)
        out["max"].append(max(values) if values else None)
        out["n"].append(stats["n"])
    return out


def pick_epochs(epochs: Sequence[int], max_points: int) -> list[int]:
    """At most ``max_points`` epochs, evenly spread, always keeping the first and the last.

    Charts of 500 epochs x hundreds of runs would otherwise ship megabytes; a line drawn
    through 200 evenly spaced epochs looks the same at any screen width.
    """
    epochs = sorted(set(epochs))
    if len(epochs) <= max_points or max_points < 2:
        return epochs
    step = (len(epochs) - 1) / (max_points - 1)
    return sorted({epochs[round(i * step)] for i in range(max_points)})


def diverged(rows: Iterable[dict[str, Any]]) -> bool:
    """A run diverged when its training or validation loss ever became NaN or infinite."""
    return any(
        isinstance(row.get(name), float) and not math.isfinite(row[name])
        for row in rows for name in ("loss", "val_loss")
    )


def run_verdict(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One run's final and best validation accuracy, the epoch of the best, final val loss, s/epoch.

    rows: the run's epochs in order. "Final" is the last recorded epoch, which for a run
    still training is its latest.
    """
    if not rows:
        return {"final_val_accuracy": None, "best_val_accuracy": None, "best_epoch": None,
                "final_val_loss": None, "seconds_per_epoch": None, "diverged": False, "epochs": 0}
    scored = [(row["val_accuracy"], row["epoch"]) for row in rows if is_finite(row.get("val_accuracy"))]
    # The earliest epoch wins a tie: it reached that accuracy first.
    best = max(scored, key=lambda item: (item[0], -item[1])) if scored else (None, None)
    seconds = [row["seconds"] for row in rows if is_finite(row.get("seconds"))]
    return {
        "final_val_accuracy": rows[-1].get("val_accuracy"),
        "best_val_accuracy": best[0],
        "best_epoch": best[1],
        "final_val_loss": rows[-1].get("val_loss"),
        "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
        "diverged": diverged(rows),
        "epochs": len(rows),
    }


def group_verdict(verdicts: Sequence[dict[str, Any]], statuses: Sequence[str],
                  seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Mean +- std over the seeds of one initializer, with the count of diverged runs.

    A run counts as diverged by its losses or by its status (the worker's word); its finite
    values stay in the means (module docstring). ``undiverged`` counts the runs that give a
    lead its meaning: a finite final accuracy from a run that never diverged. ``counted``:
    {seed: (final, diverged)} of the runs the statistics count (finished, finite final), what
    mark_leader decides on; seeds: one per run (default: the runs' positions).
    """
    broke = [bool(v["diverged"]) or status == "diverged" for v, status in zip(verdicts, statuses)]
    measured = [(v, diverged) for v, diverged in zip(verdicts, broke) if v["epochs"]]
    seeds = list(seeds) if seeds is not None else list(range(len(statuses)))
    counted = {seed: (float(v["final_val_accuracy"]), diverged) for seed, v, diverged, status
               in zip(seeds, verdicts, broke, statuses)
               if counts_as_result(status, bool(v["diverged"])) and is_finite(v["final_val_accuracy"])}
    return {
        "counted": counted,
        "runs": len(statuses),
        "succeeded": sum(status == "succeeded" for status in statuses),
        "active": sum(status in ("queued", "running") for status in statuses),
        "diverged": sum(broke),
        "undiverged": sum(is_finite(v["final_val_accuracy"]) and not diverged for v, diverged in measured),
        **{name: mean_std(v[name] for v, _ in measured)
           for name in ("final_val_accuracy", "best_val_accuracy", "best_epoch", "final_val_loss", "seconds_per_epoch")},
    }


def mark_leader(tables: Sequence[dict[str, Any]]) -> int | None:
    """Index of the group that leads one cell (None: no lead): the statistics' rank 1 top.

    Over each table's ``counted`` runs (group_verdict: finished, finite; failed, cancelled and
    unfinished runs are not a result) on the seeds every counted group has: the highest mean.
    No lead when no seed is common, when another group has the same mean (nothing tells them
    apart), when the leader's values there all come from diverged runs, or when it is the cell's
    only counted group (leading nothing).
    """
    counted = [table.get("counted", {}) for table in tables]
    seeds = ranking_seeds([{seed: value for seed, (value, _) in c.items()} for c in counted])
    if not seeds or sum(1 for c in counted if c) < 2:
        return None
    scored = [(sum(c[s][0] for s in seeds) / len(seeds), -i) for i, c in enumerate(counted) if c]
    best, index = max(scored)
    if all(counted[-index][s][1] for s in seeds):
        return None
    if any(abs(mean - best) <= TIE_TOLERANCE for mean, i in scored if i != index):
        return None
    return -index


def mark_leaders(tables: Sequence[dict[str, Any]], cells: Sequence[Any] | None = None) -> set[int]:
    """Per grid cell (cells: one per table; None: one cell), the index of its leader (mark_leader)."""
    members: dict[Any, list[int]] = {}
    for i, cell in enumerate(cells if cells is not None else [None] * len(tables)):
        members.setdefault(cell, []).append(i)
    found = set()
    for indices in members.values():
        leader = mark_leader([tables[i] for i in indices])
        if leader is not None:
            found.add(indices[leader])
    return found
