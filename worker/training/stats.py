"""Summaries of weight and gradient tensors: the numbers and histograms the pages draw.

Pure numpy so it can be tested, and reused by the API, without a deep-learning backend.
Diverging runs are a result, not an error: NaN and Inf never raise here. The moments are
computed over every value so a single NaN shows up as a NaN mean (the user must see it),
while the histogram and the quantiles cover the finite values and ``nonfinite`` counts the rest.

Besides the tensor's own 64-bin histogram, each summary carries ``QUANTILES + 1`` evenly
spaced quantiles of the finite values (0 %, 1/Q, ..., 100 %). Each tensor's histogram has
its own edges, so two runs (or two epochs) cannot be overlaid bin for bin; the quantiles
can: the dashboard rebuilds the distribution's CDF from them and counts it on edges shared
by every run and epoch of a study (app/analysis/histograms.py), exact to within 1/Q of the
values at every edge. The first and last quantiles are the finite values' min and max, bit
for bit (a diverged tensor's recorded min/max are NaN or infinite; these are its finite range).
"""

from __future__ import annotations

from typing import Any

import numpy as np

HISTOGRAM_BINS = 64
# Q. The cost is one sort per tensor whatever Q is (about 0.2 ms for a 784x128 float32
# kernel, cheaper than the np.histogram it replaces); Q only sets the stored size (129
# numbers a row at 7 significant digits, about 1.6 kB of JSON) and the resolution (1/128
# of the values). Measured in bench/RESULTS.md ("Quantiles in the recorder").
QUANTILES = 128


def _short(value: float) -> float:
    """7 significant digits: float32's own precision, and half the JSON of a float64 repr."""
    return float(f"{value:.7g}")


def _quantiles(ordered: np.ndarray, count: int) -> list[float]:
    """``count + 1`` evenly spaced quantiles of sorted values (numpy's default linear rule).

    A quantile that is one of the tensor's values (both ends, and every quantile inside a
    run of equal values: a constant tensor, the zeros of dead units) is stored exactly, as
    the recorded min and max are; only those interpolated between two different values are
    cut to 7 digits, and kept between the two. Rounded, a float32 0.1 (0.10000000149011612,
    the recorded min and max of a constant 0.1 kernel) would read 0.1, a smaller number: the
    tensor fell wholly below shared edges that start at its min, and its percentiles were
    not its min and max. Exact, they are, and a point mass sits in exactly the bin holding
    its value. The cost is the longer repr of those few numbers (a 784x128 normal kernel has
    its two ends and a tie or two exact: its row stays about 1.6 kB).
    """
    position = np.linspace(0.0, ordered.size - 1, count + 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, ordered.size - 1)
    weight = position - low
    below, above = ordered[low].astype(np.float64), ordered[high].astype(np.float64)
    exact = (weight == 0) | (below == above)
    with np.errstate(all="ignore"):  # float64 values near its limits overflow the difference
        values = np.where(exact, below, below + (above - below) * weight)
    # Between the two values it lies between, a rounded quantile keeps the order the CDF
    # reconstruction relies on (the brackets of later quantiles start where earlier ones end).
    return [value if is_exact else min(max(_short(value), floor), ceiling)
            for value, is_exact, floor, ceiling in zip(values.tolist(), exact.tolist(), below.tolist(), above.tolist())]


def _bin_edges(low, high, bins: int) -> np.ndarray:
    """np.histogram's edges for values in [low, high]; float64 ones where numpy gives up.

    A run on its way to diverging holds weights near float32's limits: a constant tensor
    of 1e30 has no finite-sized ±0.5 bins in float32, and a span of ±3e38 overflows.
    """
    try:
        with np.errstate(all="ignore"):
            edges = np.histogram_bin_edges(np.array([low, high]), bins=bins)
        if np.all(np.isfinite(edges)):
            return edges
    except ValueError:
        pass
    low, high = float(low), float(high)
    if low == high:
        pad = max(0.5, abs(low) * 1e-6)
        low, high = low - pad, high + pad
    return np.linspace(low, high, bins + 1)


def tensor_summary(values: Any, bins: int = HISTOGRAM_BINS, quantiles: int = QUANTILES) -> dict[str, Any]:
    """mean, std, min, max, l2, nonfinite, a ``bins``-bin histogram (edges, counts) and quantiles.

    Every value is a plain Python int or float so the dict can go straight to JSON
    (NaN and Inf stay floats: storage must keep them, as MLflow does with its is_nan flag).
    ``quantiles`` is None when no value is finite.
    """
    flat = np.asarray(values)
    if flat.dtype != np.float64:
        # Sorting float32 directly is about twice as fast as in float64; the moments
        # below still accumulate in float64.
        flat = flat.astype(np.float32, copy=False)
    flat = flat.reshape(-1)
    wide = flat.astype(np.float64)
    finite_mask = np.isfinite(flat)
    finite = flat if finite_mask.all() else flat[finite_mask]
    with np.errstate(all="ignore"):
        if flat.size:
            # einsum, not np.dot: a BLAS call would wake OpenBLAS's spinning threads,
            # which then compete with the training threads for the CPU.
            l2 = np.sqrt(np.einsum("i,i->", wide, wide))
            moments = (wide.mean(), wide.std(), wide.min(), wide.max(), l2)
        else:
            moments = (np.nan, np.nan, np.nan, np.nan, 0.0)
    if finite.size:
        ordered = np.sort(finite)
        # np.histogram's own edges (a constant tensor gets value +- 0.5) and its rule (bins
        # are [a, b), the last one [a, b]), counted on the sorted values by binary search.
        edges = _bin_edges(ordered[0], ordered[-1], bins)
        below = np.searchsorted(ordered, edges, side="left")
        below[-1] = ordered.size
        counts = np.diff(below)
        quantile_values = _quantiles(ordered, quantiles)
    else:
        # Nothing finite to place: a fixed [0, 1] axis keeps the shape storage expects.
        counts, edges = np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1)
        quantile_values = None
    mean, std, low, high, l2 = (float(value) for value in moments)
    return {
        "mean": mean,
        "std": std,
        "min": low,
        "max": high,
        "l2": l2,
        "edges": [float(edge) for edge in edges],
        "counts": [int(count) for count in counts],
        "nonfinite": int(flat.size - finite.size),
        "quantiles": quantile_values,
    }


def gradient_summary(grad: Any, bins: int = HISTOGRAM_BINS, quantiles: int = QUANTILES) -> dict[str, Any]:
    """Like ``tensor_summary``; the L2 norm is also under "norm", the name gradients are read by."""
    summary = tensor_summary(grad, bins, quantiles)
    summary["norm"] = summary["l2"]
    return summary
