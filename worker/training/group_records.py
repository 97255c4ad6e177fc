"""What one recording of a group stores per run: layer statistics and unit diagnostics.

Both are computed once for the whole group (one weight read, one probe gradient, one
forward pass) and returned as a function of a run's slice index, so the recorder hands
each run only its own slice's records.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.domain.layers import NORMALIZATION_KINDS  # RunNormalization.build's order; LayerNorm has the first two
from app.domain.units import CORRELATION_SAMPLES, layer_diagnostics
from worker.training.model import normalization_layers, weighted_layers
from worker.training.probe import activation_name, kernel_gradients, layer_outputs
from worker.training.stats import gradient_summary, tensor_summary


def group_layer_statistics(model, probe_index: np.ndarray, probe_y: np.ndarray, weights: list):
    """A function of a run's slice index: that run's kernel, bias and gradient records, and its
    normalization layers' scale (gamma), offset (beta) and BatchNorm moving statistics.

    The probe's loss is the mean over every run's probe samples, so each slice's gradient
    is 1/runs of its own run's; it is scaled back here. ``weights``: each weighted layer's
    ``get_weights()``, read once per recording for this and ``group_unit_diagnostics``. Every layer
    with a kernel is recorded (convolutions, Dense layers, skip projections; kernels of any rank).
    A normalization layer is listed under its own name (``bn_j``, ``ln_j``) with the index of
    the layer it normalizes, whose records come first.
    """
    layers = weighted_layers(model)
    norms = [(layer, layer.get_weights()) for layer in normalization_layers(model)]
    runs = probe_index.shape[1]
    gradients = kernel_gradients(model, probe_index, probe_y)

    def records(index: int) -> list[dict[str, Any]]:
        result = []
        for position, (layer, tensors, gradient) in enumerate(zip(layers, weights, gradients)):
            kernel, bias = tensors[0], tensors[1] if len(tensors) > 1 else None  # no bias before a BatchNorm
            for kind, summary in (
                ("kernel", tensor_summary(kernel[index])),
                ("bias", None if bias is None else tensor_summary(bias[index])),
                ("gradient", gradient_summary(gradient[index] * np.float32(runs))),
            ):
                if summary is not None:
                    result.append({"layer": layer.name, "index": position, "kind": kind, **summary})
        for layer, tensors in norms:
            for kind, values in zip(NORMALIZATION_KINDS, tensors):
                result.append({"layer": layer.name, "index": layer.position, "kind": kind,
                               **tensor_summary(values[index])})
        return result

    return records


def activated_layers(model, architecture) -> list[tuple[str, int, Any]]:
    """(name, weighted position, tap) per hidden layer and the output: ``tap`` is the Keras layer
    whose output is that layer's activated output (its ``act_j`` after a normalization or a
    residual sum, else the layer itself, as in a plain MLP)."""
    position = {layer.name: layer.position for layer in weighted_layers(model)}
    present = {layer.name for layer in model.layers}
    found = []
    for hidden in architecture.hidden:
        tap = f"act_{hidden.index}" if f"act_{hidden.index}" in present else hidden.layer.name
        found.append((hidden.layer.name, position[hidden.layer.name], model.get_layer(tap)))
    output = architecture.output.name
    return [*found, (output, position[output], model.get_layer(output))]


def group_unit_diagnostics(taps, tapped: list[tuple[str, int, Any]], probe_index: np.ndarray, weights: list,
                           probe_x: np.ndarray | None = None):
    """A function of a run's slice index: that run's unit diagnostics (app/domain/units.py).

    One forward pass for the group (``taps``, the model returning each of ``tapped``'s outputs,
    ``activated_layers``); slice k of each output is run k's own model on run k's own probe
    samples. A unit is a Dense unit or a conv channel, whose image positions count as samples (a
    dead channel is 0 at every position of every probe image; a conv kernel is its channels'
    (kh·kw·c_in)-long filters). ``probe_x`` (the first layer's input), given for a plain MLP
    only, adds the pre-activations' mean-field length and correlation: there each layer's
    pre-activations are its input (the previous layer's output) times its weights, which is
    not so across a normalization, a pooling or a skip.
    """
    outputs = layer_outputs(taps, probe_index)
    names = [activation_name(tap) for _, _, tap in tapped]

    def records(index: int) -> list[dict[str, Any]]:
        found, layer_input = [], None if probe_x is None else probe_x[:, index, :]
        for (name, position, _), activation, output in zip(tapped, names, outputs):
            tensors = weights[position]
            units = tensors[0].shape[-1]
            kernel = tensors[0][index].reshape(-1, units)
            bias = tensors[1][index] if len(tensors) > 1 else np.zeros(units, kernel.dtype)  # none before a BatchNorm
            pre = None
            if layer_input is not None:
                with np.errstate(all="ignore"):
                    pre = layer_input[:CORRELATION_SAMPLES].astype(np.float64) @ kernel + bias
                layer_input = output[index]
            found.append(layer_diagnostics(name, position, activation, output[index].reshape(-1, units), kernel, bias,
                                           pre))
        return found

    return records
