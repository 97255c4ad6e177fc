"""Histograms on shared bin edges, and percentile bands, rebuilt from stored quantiles.

Every stored tensor summary has its own 64 bins (min..max of that tensor), so two runs, or
two epochs of one run, cannot be compared bin for bin. What can be compared is the
distribution itself. A summary's Q+1 evenly spaced quantiles q_0 <= ... <= q_Q pin the
empirical CDF at Q+1 points (F(q_i) = i/Q); between them we take the CDF to be linear (the
values spread evenly), and a repeated quantile (q_i == q_{i+1}, e.g. an all-zeros kernel) is
a point mass. Counting that CDF on any edges gives a histogram that is exact at the
quantiles and never off by more than 1/Q of the values at any edge, so a bin's count is
within 2/Q of the values (1/Q at each of its two edges) and a cumulative count within 1/Q.

The tensor's own histogram pins the same CDF at its edges, so those points are merged in:
they make the thin tails sharper than the quantiles alone. Rows written before quantiles
were stored have only those points (linear inside each of the 64 bins); the same code
re-bins them, and those answers are flagged ``approximate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

# TensorBoard's Distributions view: the normal distribution's -inf, -1.5, -1, -0.5, 0, +0.5,
# +1, +1.5 sigma and +inf, as fractions (its basis points / 10000).
TENSORBOARD_PERCENTILES = (0.0, 0.0668, 0.1587, 0.3085, 0.5, 0.6915, 0.8413, 0.9332, 1.0)


@lru_cache(maxsize=16)
def _even(size: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, size)


def cdf_points(
    quantiles: Sequence[float] | None, own_edges: Sequence[float], own_counts: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(x, F(x), approximate): the points of a tensor's CDF that its summary pins down.

    The quantiles give F(q_i) = i/Q; the tensor's own histogram gives F at each of its edges
    (the cumulative counts). Both are points of the same empirical CDF, so they are merged:
    the quantiles resolve the bulk, the histogram's equal-width bins the long, thin tails
    (where one quantile step can span half the range). Without quantiles (rows stored before
    they were) only the histogram's points remain: ``approximate``. None: no finite value.
    """
    weights = np.asarray(own_counts, dtype=np.float64)
    total = weights.sum()
    if total <= 0 or len(own_edges) != weights.size + 1:
        return None
    xs = np.asarray(own_edges, dtype=np.float64)
    ps = np.concatenate(([0.0], np.cumsum(weights) / total))
    approximate = not quantiles
    if quantiles:
        q = np.asarray(quantiles, dtype=np.float64)
        xs = np.concatenate((xs, q))
        ps = np.concatenate((ps, _even(q.size)))
        # By x, and at equal x by F: a point mass is a vertical run of points, climbed upwards
        # (the histogram's last edge counts values <= it, every other edge values < it).
        order = np.lexsort((ps, xs))
        xs = xs[order]
        # The two sources round differently (float32 quantiles, float64 edges): the running
        # maximum keeps the CDF from stepping back by those few values.
        ps = np.maximum.accumulate(ps[order])
    return xs, ps, approximate


def _cdf_below(xs: np.ndarray, ps: np.ndarray, at: np.ndarray, inclusive: bool) -> np.ndarray:
    """F(at-) (the share of values < at), or F(at) with ``inclusive`` (values <= at).

    With k points below ``at``, the segments before point k-1 lie wholly below it and the
    segment [x_{k-1}, x_k] only in part, in proportion to its length; a zero-length segment
    (a point mass) is wholly below or wholly not, which is exactly a jump of the CDF.
    """
    k = np.searchsorted(xs, at, side="right" if inclusive else "left")
    inner = (k > 0) & (k < xs.size)
    share = np.where(k >= xs.size, 1.0, 0.0)
    i = k[inner]
    x0, x1, p0, p1 = xs[i - 1], xs[i], ps[i - 1], ps[i]
    width = x1 - x0
    fraction = np.divide(at[inner] - x0, width, out=np.zeros_like(width), where=width > 0)
    share[inner] = p0 + (p1 - p0) * np.clip(fraction, 0.0, 1.0)
    return share


def counts_on_edges(xs: np.ndarray, ps: np.ndarray, total: float, edges: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(counts per bin, values below the first edge, values above the last edge).

    Bins are [a, b) but the last is [a, b], as in np.histogram, so a tensor whose values all
    fall inside the edges is counted whole.
    """
    below = _cdf_below(xs, ps, edges, inclusive=False)
    # The last bin is closed: at or past the largest value everything is in; short of it,
    # only a point mass sitting exactly on the edge tells "<" from "<=".
    below[-1] = 1.0 if edges[-1] >= xs[-1] else _cdf_below(xs, ps, edges[-1:], inclusive=True)[0]
    counts = np.diff(below) * total
    return np.clip(counts, 0.0, None), below[0] * total, (1.0 - below[-1]) * total


def shared_edges(low: float, high: float, bins: int) -> np.ndarray:
    """``bins`` equal bins from low to high; a single value gets +-0.5 around it, as in numpy."""
    if not (np.isfinite(low) and np.isfinite(high)):
        low, high = 0.0, 1.0
    if high <= low:
        low, high = low - 0.5, low + 0.5
    return np.linspace(low, high, bins + 1)


def rebin(
    edges: np.ndarray,
    quantiles: Sequence[float] | None,
    own_edges: Sequence[float],
    own_counts: Sequence[float],
) -> dict[str, object] | None:
    """One tensor's histogram on shared edges, from its quantiles or else its own histogram.

    Returns {"counts", "below", "above", "total", "approximate"} or None when the tensor has
    no finite value. ``total`` is the number of finite values (its own histogram's sum).
    """
    points = cdf_points(quantiles, own_edges, own_counts)
    if points is None:
        return None
    xs, ps, approximate = points
    total = float(sum(own_counts))
    counts, below, above = counts_on_edges(xs, ps, total, edges)
    return {"counts": counts, "below": below, "above": above, "total": total, "approximate": approximate}


def percentiles(
    quantiles: Sequence[float] | None,
    own_edges: Sequence[float],
    own_counts: Sequence[float],
    at: Sequence[float] = TENSORBOARD_PERCENTILES,
) -> tuple[list[float], bool] | None:
    """The values at the given fractions (default: TensorBoard's nine), and whether approximate.

    By inverting the CDF of ``cdf_points``: exact at multiples of 1/Q (TensorBoard's
    fractions fall between them, within 1/Q of the values); from a histogram alone, exact
    only at its bin edges.
    """
    points = cdf_points(quantiles, own_edges, own_counts)
    if points is None:
        return None
    xs, ps, approximate = points
    wanted = np.asarray(at, dtype=np.float64)
    # The first point whose F reaches p; F is strictly rising into it, so no division by 0.
    k = np.clip(np.searchsorted(ps, wanted, side="left"), 1, ps.size - 1)
    p0, p1 = ps[k - 1], ps[k]
    fraction = np.divide(wanted - p0, p1 - p0, out=np.ones_like(wanted), where=p1 > p0)
    values = xs[k - 1] + (xs[k] - xs[k - 1]) * np.clip(fraction, 0.0, 1.0)
    return [float(value) for value in values], approximate


def robust_range(rows: Sequence[tuple[float, float, float, float]], spread: float = 4.0) -> tuple[float, float]:
    """The envelope of mean +- ``spread`` std over tensors, clipped to each tensor's min..max.

    rows: (mean, std, min, max) of tensors with finite values only. Four standard deviations
    keep essentially all of a bell-shaped tensor, but not the handful of outliers that can
    stretch min..max so far that the bulk of every histogram falls into two bins.
    """
    lows, highs = [], []
    for mean, std, low, high in rows:
        lows.append(max(low, mean - spread * std))
        highs.append(min(high, mean + spread * std))
    if not lows:
        return 0.0, 1.0
    return min(lows), max(highs)


def rebin_many(edges: np.ndarray, tensors: Sequence[tuple[Sequence[float] | None, Sequence[float], Sequence[float]]],
               ) -> list[dict[str, object] | None]:
    """``rebin`` for many tensors on the same edges at once (one layer of every run).

    tensors: (quantiles, own edges, own counts) each. Tensors whose summaries have the same
    shape (all rows written by one recorder do) are done together in numpy, row by row of a
    matrix; the answers are those of ``rebin``, which handles the rest.
    """
    out: list[dict[str, object] | None] = [None] * len(tensors)
    batches: dict[tuple[int, int], list[int]] = {}
    for i, (quantiles, own_edges, own_counts) in enumerate(tensors):
        if quantiles and len(own_edges) == len(own_counts) + 1 and sum(own_counts) > 0:
            batches.setdefault((len(quantiles), len(own_edges)), []).append(i)
        else:
            out[i] = rebin(edges, quantiles, own_edges, own_counts)
    for (size, _), rows in batches.items():
        counts = np.array([tensors[i][2] for i in rows], dtype=np.float64)
        totals = counts.sum(axis=1)
        xs = np.concatenate((np.array([tensors[i][1] for i in rows], dtype=np.float64),
                             np.array([tensors[i][0] for i in rows], dtype=np.float64)), axis=1)
        ps = np.concatenate((np.zeros((len(rows), 1)), np.cumsum(counts, axis=1) / totals[:, None],
                             np.broadcast_to(_even(size), (len(rows), size))), axis=1)
        order = np.lexsort((ps, xs), axis=-1)  # per row: by x, then by F (see cdf_points)
        xs = np.take_along_axis(xs, order, axis=1)
        ps = np.maximum.accumulate(np.take_along_axis(ps, order, axis=1), axis=1)
        share = _shares(xs, ps, edges, inclusive=False)
        share[:, -1] = _shares(xs, ps, edges[-1:], inclusive=True)[:, 0]
        binned = np.clip(np.diff(share, axis=1) * totals[:, None], 0.0, None)
        for row, i in enumerate(rows):
            out[i] = {"counts": binned[row], "below": share[row, 0] * totals[row],
                      "above": (1.0 - share[row, -1]) * totals[row], "total": float(totals[row]), "approximate": False}
    return out


def _shares(xs: np.ndarray, ps: np.ndarray, at: np.ndarray, inclusive: bool) -> np.ndarray:
    """``_cdf_below`` for every row of xs/ps at once: shape (rows, len(at))."""
    compare = np.less_equal if inclusive else np.less
    k = compare(xs[:, :, None], at[None, None, :]).sum(axis=1)
    size = xs.shape[1]
    i = np.clip(k, 1, size - 1)
    x0, x1 = np.take_along_axis(xs, i - 1, axis=1), np.take_along_axis(xs, i, axis=1)
    p0, p1 = np.take_along_axis(ps, i - 1, axis=1), np.take_along_axis(ps, i, axis=1)
    width = x1 - x0
    fraction = np.divide(at[None, :] - x0, width, out=np.zeros_like(width), where=width > 0)
    share = p0 + (p1 - p0) * np.clip(fraction, 0.0, 1.0)
    return np.where(k >= size, 1.0, np.where(k == 0, 0.0, share))
