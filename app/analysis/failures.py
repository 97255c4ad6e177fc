"""Failure modes of a study's runs: tags with their evidence, and how often each initializer
(per activation) ends in each.

Decided at read time from what the worker stored, so a threshold can change without a new
training: the run's status and losses (diverged), the unit diagnostics of
worker/training/activations.py (dead ReLUs, saturation, symmetry) and the probe gradients'
L2 norms in layer_stats (vanishing or exploding). Each run is read at two moments, at
initialization (epoch 0) and at its latest recorded epoch; every piece of evidence says
which epoch it comes from.

The gradient rule compares the input-side layer with the output layer: ratio = ‖g_first‖ /
‖g_last‖ of the kernel gradients. Backpropagation runs from the output to the input, so a
signal that fades on the way shows as a small ratio (vanishing), one that grows as a large
one (exploding). A first layer whose gradient is exactly 0 receives nothing at all (zeros
initialization): vanishing, even when the last layer's is 0 too and the ratio is undefined.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from app.analysis.summary import initializer_key, is_finite
from app.domain.datasets import CHANCE_ACCURACY as CHANCE
from app.domain.registry import label as registry_label
from app.domain.units import SATURATION_LEVEL

DEAD_SHARE = 0.5          # a layer is tagged when more than half of its ReLU units are dead
SATURATED_SHARE = 0.5     # ... or more than half of its tanh/sigmoid outputs sit near a bound
VANISHING_RATIO = 1e-3    # ‖g_first‖ / ‖g_last‖ below this
EXPLODING_RATIO = 1e3     # ... or above this
CHANCE_MARGIN = 0.02      # a finished run whose accuracies stay this close to chance learnt nothing

TAGS: dict[str, tuple[str, str]] = {
    "diverged": ("diverged", "the training or validation loss became NaN or infinite"),
    "dead_relu": ("dead ReLUs", f"more than {DEAD_SHARE:.0%} of a ReLU layer's units output 0 on every probe sample"),
    "saturated": ("saturated", f"more than {SATURATED_SHARE:.0%} of a tanh or sigmoid layer's outputs on the probe "
                               f"batch lie within {1 - SATURATION_LEVEL:.0%} of the activation's bounds"),
    "vanishing_gradients": ("vanishing gradients", f"the first layer's gradient norm is below {VANISHING_RATIO:g} × "
                                                   "the output layer's, or exactly 0"),
    "exploding_gradients": ("exploding gradients", f"the first layer's gradient norm is above {EXPLODING_RATIO:g} × "
                                                   "the output layer's"),
    "symmetric": ("symmetry never broken", "every unit of a layer has the same incoming weights and bias, at "
                                           "initialization and still at the latest epoch"),
    "no_learning": ("learnt nothing", f"the run finished with its training and validation accuracy within "
                                      f"{CHANCE_MARGIN * 100:g} points of chance ({CHANCE:.0%})"),
}
ACTIVE = ("queued", "running")


def _evidence(epoch: int | None, layer: str | None, value: float | None, detail: str) -> dict[str, Any]:
    return {"epoch": epoch, "layer": layer, "value": value, "detail": detail}


def _by_epoch(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda row: (row["epoch"], row["layer_index"])):
        out[row["epoch"]].append(row)
    return out


def diverged_evidence(run: dict[str, Any], losses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's diverged epoch (stored at its end, or the first non-finite loss while it trains on)."""
    first = next((row for row in losses if not (is_finite(row["loss"]) and is_finite(row["val_loss"]))), None)
    epoch = run.get("diverged_epoch")
    if epoch is None and first is None and run["status"] != "diverged":
        return []
    row = next((row for row in losses if row["epoch"] == epoch), first) if epoch is not None else first
    epoch = epoch if epoch is not None else (row["epoch"] if row else None)
    if row is None:
        return [_evidence(epoch, None, None, f"diverged in epoch {epoch}")]
    value = row["loss"] if not is_finite(row["loss"]) else row["val_loss"]
    name = "loss" if not is_finite(row["loss"]) else "val_loss"
    return [_evidence(epoch, None, value, f"{name} = {value} in epoch {epoch}")]


def _share_evidence(moments: dict[int, list[dict[str, Any]]], field: str, threshold: float, what: str):
    found = []
    for epoch, rows in moments.items():
        for row in rows:
            value = row.get(field)
            if is_finite(value) and value > threshold:
                found.append(_evidence(epoch, row["layer"], value,
                                       f"{row['layer']}: {value:.0%} {what} at epoch {epoch}"))
    return found


def symmetry_evidence(moments: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Layers whose units are identical at init and not told apart at the latest epoch.

    A layer whose latest weights are non-finite (the run diverged) cannot be checked
    there; it counts as never broken when it was symmetric at init.
    """
    if not moments:
        return []
    first, last = min(moments), max(moments)
    latest = {row["layer"]: row for row in moments[last]}
    found = []
    for row in moments[first]:
        if row.get("units_identical") is not True:
            continue
        later = latest.get(row["layer"], row)
        if later.get("units_identical") is False:
            continue
        units = f"{row['layer']}: all {row['units']} units identical at epoch {first}"
        if later.get("units_identical") is True:
            confirmed = later
            detail = units if later["epoch"] == first else f"{units} and still at epoch {later['epoch']}"
        else:  # None: not finite there
            confirmed, detail = row, f"{units}; the weights of epoch {later['epoch']} are not finite"
        found.append(_evidence(confirmed["epoch"], row["layer"], confirmed.get("unit_spread"), detail))
    return found


def gradient_evidence(moments: dict[int, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Vanishing and exploding evidence from the first and last layers' gradient norms."""
    found: dict[str, list[dict[str, Any]]] = {"vanishing_gradients": [], "exploding_gradients": []}
    for epoch, rows in moments.items():
        if len(rows) < 2:
            continue
        head, tail = rows[0], rows[-1]
        first, last = head["l2"], tail["l2"]
        if not (is_finite(first) and is_finite(last)):
            continue
        pair = f"{head['layer']}/{tail['layer']}"
        norms = f"‖g‖ {head['layer']} = {first:.3g}, {tail['layer']} = {last:.3g} at epoch {epoch}"
        if first == 0.0:
            found["vanishing_gradients"].append(_evidence(epoch, pair, 0.0 if last else None, f"no gradient reaches "
                                                          f"{head['layer']}: {norms}"))
        elif last == 0.0 or first / last > EXPLODING_RATIO:
            ratio = math.inf if last == 0.0 else first / last
            found["exploding_gradients"].append(_evidence(epoch, pair, ratio, f"ratio {ratio:.3g}: {norms}"))
        elif first / last < VANISHING_RATIO:
            ratio = first / last
            found["vanishing_gradients"].append(_evidence(epoch, pair, ratio, f"ratio {ratio:.3g}: {norms}"))
    return found


def chance_evidence(run: dict[str, Any], metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A finished run whose last epoch sits at chance, training and validation alike.

    The other tags explain why a run fails; this one says that it did, whatever the cause: huge
    gradients in every layer (a uniform [0, 1] init, whose ratio of first to last is unremarkable)
    leave no other trace. A network that learnt nothing answers one class, so its accuracy is that
    class's share (10-11.35 %); a diverged run is tagged as such instead."""
    if run["status"] != "succeeded" or not metrics:
        return []
    last = metrics[-1]
    accuracies = [last.get("accuracy"), last.get("val_accuracy")]
    # Accuracies are stored as float32: 0.08 reads 0.0799999982 and 0.12 reads 0.1199999973, so the
    # band gets float32's rounding on both sides, or it would take 12 % and refuse 8 %.
    if not all(is_finite(value) and abs(value - CHANCE) <= CHANCE_MARGIN + 1e-6 for value in accuracies):
        return []
    return [_evidence(last["epoch"], None, last["val_accuracy"],
                      f"accuracy {accuracies[0]:.1%}, val_accuracy {accuracies[1]:.1%} at epoch {last['epoch']}")]


def run_tags(run: dict[str, Any], diagnostics: list[dict[str, Any]], gradients: list[dict[str, Any]],
             losses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every failure tag of one run, in the order of TAGS, each with its evidence."""
    units = _by_epoch(diagnostics)
    evidence = {
        "diverged": diverged_evidence(run, losses),
        "dead_relu": _share_evidence(units, "dead_fraction", DEAD_SHARE, "of units dead"),
        "saturated": _share_evidence(units, "saturated_fraction", SATURATED_SHARE, "of outputs saturated"),
        **gradient_evidence(_by_epoch(gradients)),
        "symmetric": symmetry_evidence(units),
    }
    # A diverged run is at chance because it diverged: "learnt nothing" would say it twice (a run can
    # succeed with a NaN loss when nothing stops it).
    evidence["no_learning"] = [] if evidence["diverged"] else chance_evidence(run, losses)
    return [{"tag": tag, "label": TAGS[tag][0], "evidence": evidence[tag]} for tag in TAGS if evidence[tag]]


def _grouped(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row["run_id"]].append(row)
    return out


def failure_view(study_id: int, inputs: dict[str, Any]) -> dict[str, Any]:
    """Per run its tags; per initializer × activation (× grid cell: a run's optional "cell", the label the
    summary gives it) the share of measured runs with each tag.

    A run counts once it has recorded anything (or diverged); queued runs and those that
    failed before epoch 0 are left out of the shares and counted as pending.
    """
    study_activation = (inputs["spec"].get("model") or {}).get("activation", "relu")
    diagnostics, gradients = _grouped(inputs["diagnostics"]), _grouped(inputs["gradients"])
    losses = _grouped(inputs["losses"])
    runs, cells = [], {}
    for run in inputs["runs"]:
        params = run["initializer_params"] or {}
        key, label = initializer_key(run["initializer"], params), registry_label(run["initializer"], params)
        run_id = run["id"]
        # The first layer's own activation as the worker saw it; the study's before anything is recorded.
        activation = next((row["activation"] for row in diagnostics[run_id] if row["layer_index"] == 0), study_activation)
        measured = bool(diagnostics[run_id] or gradients[run_id] or losses[run_id]) or run["status"] == "diverged"
        tags = run_tags(run, diagnostics[run_id], gradients[run_id], losses[run_id]) if measured else []
        epochs = sorted({row["epoch"] for row in diagnostics[run_id] + gradients[run_id]})
        grid = run.get("cell")
        runs.append({"run_id": run_id, "initializer": run["initializer"], "params": params,
                     "key": key, "label": label, "seed": run["seed"], "status": run["status"],
                     "activation": activation, "cell": grid, "depth": run.get("depth"),
                     "weight_variance": run.get("weight_variance"), "bias_variance": run.get("bias_variance"),
                     "measured": measured, "epochs_checked": epochs, "tags": tags})
        # In a grid study (or a sweep's σ_b² column) one row per initializer and cell: pooling depths would mix
        # networks that fail for different reasons.
        cell = cells.setdefault((key, activation, grid), {"key": key, "label": label, "activation": activation,
                                                          "cell": grid, "runs": 0, "pending": 0,
                                                          "counts": dict.fromkeys(TAGS, 0)})
        if not measured:
            cell["pending"] += 1
            continue
        cell["runs"] += 1
        for tag in tags:
            cell["counts"][tag["tag"]] += 1
    for cell in cells.values():
        cell["shares"] = {tag: (count / cell["runs"] if cell["runs"] else None) for tag, count in cell["counts"].items()}
    return {
        "study_id": study_id,
        "active": any(run["status"] in ACTIVE for run in inputs["runs"]),
        "tags": [{"tag": tag, "label": label, "rule": rule} for tag, (label, rule) in TAGS.items()],
        "runs": runs,
        "matrix": {
            "initializers": list(dict.fromkeys(cell["key"] for cell in cells.values())),
            "activations": list(dict.fromkeys(cell["activation"] for cell in cells.values())),
            "cells": list(cells.values()),
        },
    }
