"""The phase view of a weight-variance sweep: the measured cells, the mean-field theory of each
σ_b² (app/analysis/phase.py), and the measured correlation at init beside its prediction."""

from __future__ import annotations

from typing import Any

from app.analysis import phase
from app.domain.numbers import json_safe
from app.domain.spec import StudySpec
from app.storage import views


def phase_view(study_id: int, spec: StudySpec, metric: str = phase.DEFAULT_METRIC, c: float = 6.0) -> dict[str, Any] | None:
    """None when the study is no weight-variance sweep (it has no phase diagram)."""
    if spec.weight_variances is None:
        return None
    inputs = views.phase_inputs(study_id)
    # The depth axis counts the network's hidden layers, as the theory's depth does: a grid's depth may
    # count residual blocks or a cnn's convolutions, and a study without a depths grid has none.
    hidden_layers = {depth: spec.hidden_layers(depth) for _, depth in spec.grid()}
    runs = [{**run, "depth": hidden_layers[run["depth"]]} for run in inputs["runs"]]
    activation_of = {run["id"]: run["activation"] or spec.model.activation for run in runs}
    activations = sorted(set(activation_of.values()))
    depths = sorted(set(hidden_layers.values()))
    deepest = max(depths)
    theories = [phase.theory(activation, bias, list(spec.weight_variances), depth_limit=2.0 * deepest, c=c)
                for activation in activations for bias in (spec.bias_variances or [0.0])]
    measured = phase.cells(runs, inputs["finals"], metric)
    samples = samples_of(spec, metric)
    edges = [edge for activation in activations for bias in (spec.bias_variances or [0.0])
             if (edge := phase.measured_edge(measured, activation, bias, metric, samples=samples)) is not None]
    return json_safe({
        "study_id": study_id, "metric": metric, "activations": activations,
        "weight_variances": sorted(spec.weight_variances), "bias_variances": sorted(spec.bias_variances or [0.0]),
        "depths": depths,
        "theory_caveat": theory_caveat(spec),
        "cells": measured,
        "theory": theories,
        "edges": edges,
        "correlations": phase.correlations(runs, inputs["at_init"], activation_of),
    })


def samples_of(spec: StudySpec, metric: str) -> int:
    """The images a run's ``metric`` is measured on: the validation images for a ``val_`` metric."""
    train, validation = spec.dataset.sizes()
    return validation if metric.startswith("val_") else train


NORMALIZATION_NAMES = {"batchnorm": "BatchNorm", "layernorm": "LayerNorm"}


def theory_caveat(spec: StudySpec) -> str | None:
    """Why the mean-field lines are only a reference for this network (None: a plain MLP, the theory's own)."""
    model = spec.model
    departures = [what for what, present in (
        ("convolutions", model.family == "cnn"),
        (NORMALIZATION_NAMES.get(model.normalization), model.normalization != "none"),
        ("residual blocks", model.residual)) if present]
    if not departures:
        return None
    return (f"The theory is a plain MLP's (Dense layers, no normalization, no skips); this network has "
            f"{' and '.join(departures)}, so its lines are a reference, not a prediction, and the correlation "
            "of two inputs is measured on plain MLPs only.")
