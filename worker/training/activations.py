"""Per-layer diagnostics of how a network's units behave on the probe batch.

The failure modes a weight summary cannot show need the layers' outputs: a ReLU unit that
is zero on every probe sample is dead (no gradient flows through it again), and a tanh or
sigmoid output near its bound has a derivative near zero (it learns nothing). Symmetry is a
property of the weights alone: when every unit of a layer has the same incoming weights
and bias, every unit computes the same function and gets the same gradient, so
gradient descent can never tell them apart (zeros or ones initialization).

The recorder measures these at the moments it measures the weights (epoch 0 and after every
epoch), on the same fixed probe samples: one extra forward pass of the probe batch, with
dropout off, through a model that returns every Dense layer's output. The thresholds on a
*layer* (is half of it dead?) are read-time decisions (app/analysis/failures.py); this
module only decides what counts for one *value*, and stores the shares.

Pure numpy apart from ``output_model`` (Keras is imported there), so the API may import
the constants.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# |tanh| above this, or a sigmoid below 1 - this or above this: the derivative there is
# under 2 % (tanh) or 4 % (sigmoid) of its value at the centre.
SATURATION_LEVEL = 0.99
# Two units are "identical" when their incoming weights and bias differ by at most this,
# relative to the layer's largest weight. Units that start identical stay so up to
# float rounding (a matmul may sum two columns in different orders), which this absorbs;
# any random initializer, whatever its scale, differs by a relative O(1).
IDENTICAL_RELATIVE = 1e-5
DEAD_ACTIVATIONS = ("relu",)
SATURATING = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}


def activation_name(layer) -> str:
    """The Keras activation's own name ("relu", "tanh", ..., "linear")."""
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def output_model(model, layers):
    """A model from ``model``'s inputs to each of ``layers``' outputs (built once per model)."""
    import keras

    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # the structure it was built with
    return keras.Model(inputs, [layer.output for layer in layers])


def layer_outputs(taps, x) -> list[np.ndarray]:
    """Each tapped layer's output on ``x`` with dropout off (it never touches a seed stream)."""
    outputs = taps(x, training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [np.asarray(output) for output in outputs]


def dead_fraction(outputs: np.ndarray, activation: str) -> float | None:
    """Share of a ReLU layer's units that are zero on every probe sample (None: not a ReLU)."""
    if activation not in DEAD_ACTIVATIONS or outputs.shape[-1] == 0:
        return None
    return float(np.mean(np.all(outputs == 0, axis=0)))


def saturated_fraction(outputs: np.ndarray, activation: str) -> float | None:
    """Share of (sample, unit) outputs of a tanh or sigmoid layer near a bound (None: neither)."""
    bounds = SATURATING.get(activation)
    if bounds is None or outputs.size == 0:
        return None
    low, high = bounds
    middle, half = (low + high) / 2, (high - low) / 2
    with np.errstate(invalid="ignore"):
        near = np.abs(outputs.astype(np.float64) - middle) > SATURATION_LEVEL * half
    return float(np.mean(near))


def unit_spread(kernel: np.ndarray, bias: np.ndarray) -> float | None:
    """Largest difference between a unit's incoming weights and bias and unit 0's, relative
    to the largest weight; 0 when every unit is the same. None for one unit, or non-finite weights.
    """
    if kernel.shape[-1] < 2:
        return None
    weights = np.concatenate([kernel.reshape(-1, kernel.shape[-1]), bias.reshape(1, -1)]).astype(np.float64)
    if not np.all(np.isfinite(weights)):
        return None
    scale = float(np.max(np.abs(weights)))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(weights - weights[:, :1]))) / scale


def layer_diagnostics(name: str, index: int, activation: str, outputs: np.ndarray,
                      kernel: np.ndarray, bias: np.ndarray) -> dict[str, Any]:
    """One layer's record: outputs is (samples, units), kernel (in, units), bias (units,)."""
    wide = outputs.astype(np.float64)
    spread = unit_spread(kernel, bias)
    with np.errstate(all="ignore"):
        mean, std = (float(wide.mean()), float(wide.std())) if wide.size else (float("nan"), float("nan"))
    return {
        "layer": name,
        "index": index,
        "activation": activation,
        "units": int(outputs.shape[-1]),
        "dead_fraction": dead_fraction(outputs, activation),
        "saturated_fraction": saturated_fraction(outputs, activation),
        "mean": mean,
        "std": std,
        "unit_spread": spread,
        "units_identical": None if spread is None else spread <= IDENTICAL_RELATIVE,
    }
