"""How a layer's units behave on a probe batch: one definition of each measure, used everywhere.

The failure modes a weight summary cannot show need the layers' outputs. The worker measures
them on the probe batch at the moments it measures the weights (worker/training/recorder.py),
and the signal-propagation probe on its own batch; both call these functions, so "dead"
means the same on every page:

* **dead** (ReLU only): a unit whose output is exactly 0 on every probe sample. No gradient
  flows through it, so gradient descent can never revive it.
* **constant**: a unit whose output is the same on every probe sample, whatever the value, so
  it carries nothing about the input. Dead ReLUs are constant; so is every unit of a zeros
  network, and a unit whose incoming weights are all zero. Reported beside "dead" by the
  signal-propagation page, never under its name.
* **saturated** (tanh, sigmoid): an output within 1 % of the activation's bounds, where the
  derivative is under 2 % (tanh) or 4 % (sigmoid) of its value at the centre.
* **identical units**: every unit of a layer has the same incoming weights and bias, so all
  compute the same function and get the same gradient (zeros or ones initialization), and
  gradient descent can never tell them apart. A property of the weights alone.

* **length and correlation** of a layer's pre-activations h = x·W + b (Poole et al. 2016): q, the
  mean of h², and c, the mean over pairs of probe samples of q_ab / √(q_aa q_bb), with
  q_ab = (1/N) Σ_i h_i(a) h_i(b). Mean-field theory (app/domain/meanfield.py) predicts both
  layer by layer; the phase view draws the measured ones against it.

The thresholds on a *layer* (is half of it dead?) are read-time decisions
(app/analysis/failures.py); this module decides what counts for one *value* or *unit*.
Pure numpy: importable by the API and the worker alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.domain.activations import DEAD_CAPABLE, SATURATING

SATURATION_LEVEL = 0.99
# Two units are "identical" when their incoming weights and bias differ by at most this,
# relative to the layer's largest weight. Units that start identical stay so up to
# float rounding (a matmul may sum two columns in different orders), which this absorbs;
# any random initializer, whatever its scale, differs by a relative O(1).
IDENTICAL_RELATIVE = 1e-5
# Samples whose pairs the correlation averages over: 64 give 2016 pairs, plenty for a mean.
CORRELATION_SAMPLES = 64


def dead_fraction(outputs: np.ndarray, activation: str) -> float | None:
    """Share of a ReLU layer's units that are 0 on every probe sample (None: not a ReLU, or no units)."""
    if activation not in DEAD_CAPABLE or outputs.shape[-1] == 0:
        return None
    return float(np.mean(np.all(outputs == 0, axis=0)))


def constant_fraction(outputs: np.ndarray) -> float:
    """Share of units (columns) whose output is identical on every sample (rows) of the batch.

    NaN when the layer overflowed (an infinite or NaN output): such a layer carries no signal
    at all, and calling its units "constant" would blame the wrong thing.
    """
    outputs = np.asarray(outputs)
    if outputs.shape[0] < 2:
        raise ValueError("a constant unit is one that never changes, which needs at least two samples")
    if not np.all(np.isfinite(outputs)):
        return float("nan")
    return float(np.mean(np.all(outputs == outputs[:1], axis=0)))


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


def length_and_correlation(preactivations: np.ndarray) -> tuple[float | None, float | None]:
    """(q, c) of a (samples, units) pre-activation array; None where undefined (non-finite values,
    fewer than two samples, or a sample whose pre-activations are all 0)."""
    h = np.asarray(preactivations, dtype=np.float64)[:CORRELATION_SAMPLES]
    if h.shape[0] < 2 or h.shape[1] == 0 or not np.all(np.isfinite(h)):
        return None, None
    with np.errstate(over="ignore", invalid="ignore"):
        q = float(np.mean(h * h))
        gram = h @ h.T / h.shape[1]
        norms = np.sqrt(np.diag(gram))
    if not np.isfinite(q) or np.any(norms == 0) or not np.all(np.isfinite(gram)):
        return (q if np.isfinite(q) else None), None
    correlation = gram / np.outer(norms, norms)
    pairs = correlation[~np.eye(len(h), dtype=bool)]
    return q, float(np.mean(pairs))


def layer_diagnostics(name: str, index: int, activation: str, outputs: np.ndarray,
                      kernel: np.ndarray, bias: np.ndarray, preactivations: np.ndarray | None = None) -> dict[str, Any]:
    """One layer's record: outputs is (samples, units), kernel (in, units), bias (units,), and the
    pre-activations (samples, units) when known."""
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
        **dict(zip(("preact_length", "preact_correlation"),
                   (None, None) if preactivations is None else length_and_correlation(preactivations))),
    }
