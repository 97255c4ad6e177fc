"""A weight-variance sweep as a phase diagram: what was measured per (σ_w², σ_b², depth) cell, and
what mean-field theory (app/domain/meanfield.py) says about it.

Schoenholz et al. 2017 predict that a random network of depth L trains only while L stays
below a multiple of the correlation depth scale ξ_c(σ_w², σ_b²) (they fit c ≈ 6), which
diverges at the edge of chaos σ_w*, where χ₁ = 1: left of it (ordered) every input's signal
collapses onto one, right of it (chaotic) nearby inputs decorrelate. This module lays the
measured metric over the σ_w² × depth grid beside those curves, and per cell the measured
correlation of two inputs' pre-activations, layer by layer at initialization, beside the
correlation map's prediction from the same first layer.

Pure functions over plain rows (app/storage/views.phase_inputs). Non-finite numbers
(a diverged run; ξ_c at the critical point) are left as floats; the route serializes them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from functools import lru_cache
from statistics import mean, pstdev
from typing import Any

import numpy as np
from scipy import stats

from app.domain import meanfield
from app.domain.datasets import CHANCE_ACCURACY as CHANCE

METRICS = ("accuracy", "val_accuracy", "loss", "val_loss")
DEFAULT_METRIC = "accuracy"
CURVE_POINTS = 200
# How far above chance the diagram's best cell must be before any cell counts as trained: at least
# these 10 points, and more where the diagram's noise needs more (measured_edge's docstring says why).
TRAINED_MARGIN = 0.1
# The share of diagrams whose cells are all at chance that may still say "trained", and the chance
# accuracy that noise is drawn around: the largest class share of a test split in the catalogue
# (MNIST's 1s, 1135 of 10000), what a network that always answers that class scores.
NOISE_RATE = 0.01
NOISE_CHANCE = 0.1135


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def cells(runs: list[dict], finals: list[dict], metric: str) -> list[dict[str, Any]]:
    """Per (σ_w², σ_b², depth, activation): the metric's mean, spread and count over seeds, and the runs."""
    final = {row["run_id"]: row for row in finals}
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        grouped[(run["weight_variance"], run["bias_variance"] or 0.0, run["depth"], run["activation"])].append(run)
    out = []
    for (weight, bias, depth, activation), members in sorted(grouped.items(), key=lambda item: (
            item[0][1], item[0][2] or 0, item[0][0] or 0, item[0][3] or "")):
        values = [final[run["id"]][metric] for run in members if run["id"] in final]
        finite = [value for value in values if _finite(value)]
        out.append({
            "weight_variance": weight, "bias_variance": bias, "depth": depth, "activation": activation,
            "mean": mean(finite) if finite else None, "std": pstdev(finite) if len(finite) > 1 else None,
            "min": min(finite) if finite else None, "max": max(finite) if finite else None, "n": len(finite),
            "diverged": len(values) - len(finite), "run_ids": [run["id"] for run in members],
            "finished": sum(run["status"] in ("succeeded", "diverged") for run in members),
        })
    return out


def theory(activation: str, bias_variance: float, weight_variances: list[float], depth_limit: float,
           c: float = 6.0) -> dict[str, Any]:
    """The mean-field picture for one σ_b²: the table at the swept σ_w², the critical σ_w², and the
    trainable-depth curve c·ξ_c on a fine σ_w² grid (cut at ``depth_limit``: it diverges at σ_w*)."""
    critical = meanfield.critical_weight_variance(activation, bias_variance)
    low, high = min(weight_variances), max(weight_variances)
    grid = np.unique(np.concatenate([np.linspace(low, high, CURVE_POINTS), [critical] if critical and low < critical < high else []]))
    curve = []
    for weight in grid:
        depth = meanfield.trainable_depth(activation, float(weight), bias_variance, c)
        curve.append(None if depth is None or math.isnan(depth) else min(depth, depth_limit))  # ∞ at σ_w*: the cut
    table = meanfield.mean_field_table(activation, bias_variance, sorted(weight_variances))
    return {"activation": activation, "bias_variance": bias_variance, "critical_weight_variance": critical,
            "c": c, "points": table["points"], "curve": {"weight_variance": [float(w) for w in grid], "depth": curve}}


def correlations(runs: list[dict], at_init: list[dict], activation_of: dict[int, str]) -> list[dict[str, Any]]:
    """Per cell: the measured pre-activation correlation (mean over seeds) at each layer at init,
    and the correlation map's prediction started from the measured first layer (q¹, c¹)."""
    layers: dict[int, dict[int, tuple]] = defaultdict(dict)
    for row in at_init:
        layers[row["run_id"]][row["layer_index"]] = (row["preact_length"], row["preact_correlation"])
    grouped: dict[tuple, list[int]] = defaultdict(list)
    for run in runs:
        if run["id"] in layers:
            grouped[(run["weight_variance"], run["bias_variance"] or 0.0, run["depth"])].append(run["id"])
    out = []
    for (weight, bias, depth), ids in sorted(grouped.items(), key=lambda item: (item[0][1], item[0][2] or 0, item[0][0] or 0)):
        count = min(len(layers[run_id]) for run_id in ids) - 1  # hidden layers; the output layer is left out
        measured_c, measured_q = [], []
        for index in range(count):
            cs = [layers[run_id][index][1] for run_id in ids if _finite(layers[run_id][index][1])]
            qs = [layers[run_id][index][0] for run_id in ids if _finite(layers[run_id][index][0])]
            measured_c.append(mean(cs) if cs else None)
            measured_q.append(mean(qs) if qs else None)
        predicted = None
        if count and measured_c[0] is not None and measured_q[0] and weight:
            trajectory = meanfield.correlation_trajectory(activation_of[ids[0]], weight, bias, measured_c[0],
                                                          measured_q[0], count - 1)
            predicted = {"c": trajectory["c"], "q": trajectory["q"]}
        out.append({"weight_variance": weight, "bias_variance": bias, "depth": depth, "layers": list(range(1, count + 1)),
                    "measured_c": measured_c, "measured_q": measured_q, "predicted": predicted})
    return out


@lru_cache(maxsize=512)
def noise_ceiling(cells_by_trials: tuple[tuple[int, int], ...], rate: float = NOISE_RATE,
                  chance: float = NOISE_CHANCE) -> float:
    """The accuracy the best of a diagram's cells at chance reaches in at most ``rate`` of diagrams.

    ``cells_by_trials``: (trials, cells) pairs, a cell's trials being its images times the seeds its
    mean averages; each such cell's mean is Binomial(trials, chance) / trials, independently. The answer
    is the least accuracy a (a multiple of 1/trials) with P(best ≥ a) = 1 − ∏ P(mean < a)^cells ≤ rate.
    """
    candidates = np.unique(np.concatenate([np.arange(trials + 1) / trials for trials, _ in cells_by_trials]))
    log_below = np.zeros_like(candidates)  # log P(every cell's mean < a)
    for trials, count in cells_by_trials:
        successes = np.ceil(candidates * trials - 1e-9)  # a cell's mean ≥ a when it has this many right
        log_below += count * stats.binom.logcdf(successes - 1, trials, chance)
    passing = candidates[-np.expm1(log_below) <= rate]
    return float(passing[0]) if passing.size else 1.0


def measured_edge(cells_of_view: list[dict], activation: str, bias_variance: float, metric: str, *,
                  samples: int) -> dict[str, Any] | None:
    """The trainable region as measured, to set beside c·ξ_c and σ_w*.

    A cell trains when its mean accuracy gets at least halfway from chance to the best cell of the
    diagram; a σ_w²'s trainable depth is its deepest such cell, and the measured σ_w* is the σ_w²
    that trains deepest (the mean of the tied ones: a coarse depth grid often ties neighbours, and
    ``critical_range`` says how wide the tie is). Only accuracies have a chance level: None for losses.
    ``samples``: the images each run's accuracy is measured on (the study's validation samples for
    ``val_accuracy``, its training samples for ``accuracy``).

    Halfway to the best means nothing when the best itself is chance plus noise, so nothing trains
    (``trained`` false, no depths, no σ_w*) unless the best cell is ``margin`` above chance: at least
    ``TRAINED_MARGIN``, 10 points, and more where noise alone would pass that. A network that has
    learnt nothing scores the share of the class it always answers (up to 11.35 %, MNIST's 1s) or,
    answering regardless of its input, a binomial accuracy; a cell averaging n seeds on N images
    then has a mean of Binomial(nN, 11.35 %)/nN, and the margin puts chance + margin at the least
    accuracy the best of the diagram's such cells (``noise_ceiling``, exact under that model) reaches
    in at most ``NOISE_RATE``, 1 %, of diagrams. So the margin grows as the noise does: for 72 cells
    (the edge-of-chaos preset's), of 1 seed on 100 images it is 15 points (the best of such noise
    reaches 20 % in 45 % of diagrams, 13 % if every cell's expected accuracy were 10 %), of 2 seeds
    on 100 images or 1 seed on 200 10.5 points (such noise reaches 20 % in 1-2 % of diagrams), and
    from 250 images of 1 seed (150 of 2) on 10 points. Any diagram that trained is far above it (the
    edge-of-chaos preset's best cells pass 90 %), but on a few dozen images it must train far to
    show it: on 10 images of 1 seed a best cell needs 60 points.
    """
    if "accuracy" not in metric:
        return None
    mine = [cell for cell in cells_of_view if cell["activation"] in (activation, None)
            and cell["bias_variance"] == bias_variance and cell["weight_variance"] is not None]
    measured = [cell for cell in mine if _finite(cell["mean"])]
    if not measured:
        return None
    best = max(cell["mean"] for cell in measured)
    threshold = CHANCE + 0.5 * (best - CHANCE)
    seeds = Counter(max(int(cell.get("n") or 1), 1) for cell in measured)  # seeds averaged → cells
    required = max(CHANCE + TRAINED_MARGIN,
                   noise_ceiling(tuple(sorted((samples * n, count) for n, count in seeds.items()))))
    trained = best >= required - 1e-9  # accuracies are multiples of 1/samples: only float error is forgiven
    weights = sorted({cell["weight_variance"] for cell in mine})
    deepest = {weight: max((cell["depth"] or 0 for cell in mine if trained and cell["weight_variance"] == weight
                            and _finite(cell["mean"]) and cell["mean"] >= threshold), default=None) for weight in weights}
    reached = [depth for depth in deepest.values() if depth is not None]
    tied = [weight for weight, depth in deepest.items() if reached and depth == max(reached)]
    return {"activation": activation, "bias_variance": bias_variance, "threshold": threshold,
            "best": best, "chance": CHANCE, "margin": required - CHANCE, "trained": trained,
            "samples": samples, "seeds": min(seeds), "cells": len(measured), "noise_rate": NOISE_RATE,
            "weight_variance": weights, "trainable_depth": [deepest[weight] for weight in weights],
            "critical_weight_variance": mean(tied) if tied else None,
            "critical_range": [min(tied), max(tied)] if tied else []}
