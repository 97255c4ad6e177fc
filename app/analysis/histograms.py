"""Histograms on shared bin edges, and percentile bands, rebuilt from stored quantiles.

Every stored tensor summary has its own 64 bins (min..max of that tensor), so two runs, or
two epochs of one run, cannot be compared bin for bin. What can be compared is the
distribution itself. A summary's Q+1 evenly spaced quantiles q_0 <= ... <= q_Q pin the
empirical CDF at Q+1 points (F(q_i) = i/Q); between them we take the CDF to be linear (the
values spread evenly), and a repeated quantile (q_i == q_{i+1}, e.g. an all-zeros kernel) is
a point mass: a vertical jump, counted whole in the one bin that holds it. Counting that CDF
on any edges gives a histogram that is exact at the quantiles and never off by more than 1/Q
of the values at any edge, so a bin's count is within 2/Q of the values (1/Q at each of its
two edges) and a cumulative count within 1/Q; counts + below + above is always the number of
finite values.

The tensor's own histogram pins the same CDF at its edges, so those points are merged in:
they make the thin tails sharper than the quantiles alone. Rows written before quantiles
were stored have only those points (linear inside each of the 64 bins); the same code
re-bins them, and those answers are flagged ``approximate``.

The CDF lives on [min, max] of the finite values and nowhere else. Its own histogram does
not: numpy gives a constant tensor the bins value +- 0.5, and the CDF merged with those
edges used to reach half a unit past the only value (an all-zeros kernel's 0 % percentile
was -0.484375). So edges outside [min, max] are pulled onto it, and the percentiles at 0
and 1 are min and max themselves. min and max are the recorded ones where they are finite
(they are then the finite values' own: a NaN makes them NaN, a -inf the min -inf); else the
ends of the quantiles, which the recorder stores exactly (worker/training/stats.py), or for
rows stored before it did, the histogram's end edges (numpy puts them at the exact min and
max of a tensor that is not constant); else, for a diverged row without quantiles, the ends
of its occupied bins. Those older rows have every quantile at 7 significant digits (0.1 for
a float32 0.1, 0.10000000149011612 as the recorded min): a quantile that reads as min or max
at that precision is taken to be min or max, so those rows come out exactly at the ends too
(an inner point mass keeps its 7 digits).
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


def _as_extreme(value: object) -> float:
    """A recorded min/max as a float; NaN where it is absent or no number (it is then not used)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def _legacy_digits(values: np.ndarray) -> np.ndarray:
    """How rows stored before the exact ends rounded every quantile: 7 significant digits."""
    return np.array([float(f"{value:.7g}") for value in values.tolist()])


def _cdf_rows(quantiles: np.ndarray | None, edges: np.ndarray, counts: np.ndarray, low: np.ndarray,
              high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ps): the CDF points of several summaries of one shape, a row each, ordered.

    quantiles (rows, Q+1) or None (rows without them); edges (rows, bins+1); counts (rows,
    bins), every row with a finite value; low/high (rows,): the recorded min/max, NaN where
    not finite. See the module docstring for where the support [lo, hi] comes from.
    """
    rows = np.arange(counts.shape[0])
    ps = np.concatenate((np.zeros((rows.size, 1)), np.cumsum(counts, axis=1) / counts.sum(axis=1, keepdims=True)),
                        axis=1)
    if quantiles is None:
        occupied = counts > 0
        first = occupied.argmax(axis=1)
        last = counts.shape[1] - occupied[:, ::-1].argmax(axis=1)
        ends = edges[rows, first], edges[rows, last]
    else:
        # An occupied end bin's outer edge is the exact min (max) numpy took it from; an old
        # row's quantile only reads as it at 7 digits (a constant's empty +-0.5 bins are neither).
        def end(at: int) -> np.ndarray:
            exact = (counts[:, at] > 0) & (_legacy_digits(edges[:, at]) == _legacy_digits(quantiles[:, at]))
            return np.where(exact, edges[:, at], quantiles[:, at])

        ends = end(0), end(-1)
    lo = np.where(np.isfinite(low), low, ends[0])
    hi = np.maximum(np.where(np.isfinite(high), high, ends[1]), lo)
    # Bins beyond [lo, hi] hold nothing: their edges' F (0 below lo, 1 above hi) belongs at lo or hi.
    xs = np.clip(edges, lo[:, None], hi[:, None])
    if quantiles is not None:
        q = np.where(quantiles == _legacy_digits(lo)[:, None], lo[:, None], quantiles)
        q = np.where(q == _legacy_digits(hi)[:, None], hi[:, None], q)
        q = np.clip(q, lo[:, None], hi[:, None])
        q[:, 0], q[:, -1] = lo, hi
        xs = np.concatenate((xs, q), axis=1)
        ps = np.concatenate((ps, np.broadcast_to(_even(q.shape[1]), q.shape)), axis=1)
    # By x, and at equal x by F: a point mass is a vertical run of points, climbed upwards
    # (the histogram's last edge counts values <= it, every other edge values < it).
    order = np.lexsort((ps, xs), axis=-1)
    xs = np.take_along_axis(xs, order, axis=1)
    # The two sources round differently (7-digit quantiles, float32 edges): the running
    # maximum keeps the CDF from stepping back by those few values.
    ps = np.maximum.accumulate(np.take_along_axis(ps, order, axis=1), axis=1)
    return xs, ps


def cdf_points(
    quantiles: Sequence[float] | None, own_edges: Sequence[float], own_counts: Sequence[float],
    low: float | None = None, high: float | None = None,
) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(x, F(x), approximate): the points of a tensor's CDF that its summary pins down.

    The quantiles give F(q_i) = i/Q; the tensor's own histogram gives F at each of its edges
    (the cumulative counts). Both are points of the same empirical CDF, so they are merged:
    the quantiles resolve the bulk, the histogram's equal-width bins the long, thin tails
    (where one quantile step can span half the range). Without quantiles (rows stored before
    they were) only the histogram's points remain: ``approximate``. low/high: the recorded
    min/max (pass them: rows stored before the fix need them). None: no finite value.
    The first point is (min, 0), the last (max, 1).
    """
    weights = np.asarray(own_counts, dtype=np.float64)
    if weights.sum() <= 0 or len(own_edges) != weights.size + 1:
        return None
    q = np.asarray(quantiles, dtype=np.float64)[None, :] if quantiles else None
    xs, ps = _cdf_rows(q, np.asarray(own_edges, dtype=np.float64)[None, :], weights[None, :],
                       np.array([_as_extreme(low)]), np.array([_as_extreme(high)]))
    return xs[0], ps[0], q is None


def _shares(xs: np.ndarray, ps: np.ndarray, at: np.ndarray, inclusive: bool) -> np.ndarray:
    """F(at-) (the share of values < at), or F(at) with ``inclusive`` (values <= at), per row of xs/ps.

    With k points below ``at``, the segments before point k-1 lie wholly below it and the
    segment [x_{k-1}, x_k] only in part, in proportion to its length; a zero-length segment
    (a point mass) is wholly below or wholly not, which is exactly a jump of the CDF: at its
    value, "<" takes the foot of the vertical run and "<=" its top. Shape (rows, len(at)).
    """
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


def _binned_rows(xs: np.ndarray, ps: np.ndarray, totals: np.ndarray, edges: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts (rows, bins), below (rows,), above (rows,)) of CDF rows on ``edges``.

    Bins are [a, b) but the last is [a, b], as in np.histogram: the last edge takes "<=", so
    a point mass on it is in the last bin, and a tensor whose values all fall inside the
    edges is counted whole.
    """
    share = _shares(xs, ps, edges, inclusive=False)
    share[:, -1] = _shares(xs, ps, edges[-1:], inclusive=True)[:, 0]
    counts = np.clip(np.diff(share, axis=1) * totals[:, None], 0.0, None)
    return counts, share[:, 0] * totals, (1.0 - share[:, -1]) * totals


def counts_on_edges(xs: np.ndarray, ps: np.ndarray, total: float, edges: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(counts per bin, values below the first edge, values above the last edge) of one CDF."""
    counts, below, above = _binned_rows(xs[None, :], ps[None, :], np.array([float(total)]), np.asarray(edges, float))
    return counts[0], float(below[0]), float(above[0])


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
    low: float | None = None,
    high: float | None = None,
) -> dict[str, object] | None:
    """One tensor's histogram on shared edges, from its quantiles or else its own histogram.

    low/high: its recorded min and max (see ``cdf_points``). Returns {"counts", "below",
    "above", "total", "approximate"} or None when the tensor has no finite value. ``total``
    is the number of finite values (its own histogram's sum) = counts + below + above.
    """
    points = cdf_points(quantiles, own_edges, own_counts, low, high)
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
    low: float | None = None,
    high: float | None = None,
) -> tuple[list[float], bool] | None:
    """The values at the given fractions (default: TensorBoard's nine), and whether approximate.

    By inverting the CDF of ``cdf_points``: exact at multiples of 1/Q (TensorBoard's
    fractions fall between them, within 1/Q of the values); from a histogram alone, exact
    only at its bin edges. 0 and 1 give min and max exactly, every answer lies in [min, max],
    and a fraction inside a point mass's jump gives its value.
    """
    points = cdf_points(quantiles, own_edges, own_counts, low, high)
    if points is None:
        return None
    xs, ps, approximate = points
    wanted = np.clip(np.asarray(at, dtype=np.float64), 0.0, 1.0)
    # The first point whose F reaches p; F is strictly rising into it, so no division by 0.
    k = np.clip(np.searchsorted(ps, wanted, side="left"), 1, ps.size - 1)
    p0, p1 = ps[k - 1], ps[k]
    fraction = np.divide(wanted - p0, p1 - p0, out=np.ones_like(wanted), where=p1 > p0)
    values = xs[k - 1] + (xs[k] - xs[k - 1]) * np.clip(fraction, 0.0, 1.0)
    values = np.where(wanted <= 0.0, xs[0], np.where(wanted >= 1.0, xs[-1], values))
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


Tensor = tuple  # (quantiles, own edges, own counts) or (quantiles, own edges, own counts, min, max)


def rebin_many(edges: np.ndarray, tensors: Sequence[Tensor]) -> list[dict[str, object] | None]:
    """``rebin`` for many tensors on the same edges at once (one layer of every run).

    tensors: (quantiles, own edges, own counts[, recorded min, recorded max]) each. Tensors
    whose summaries have the same shape (all rows written by one recorder do) are done
    together in numpy, row by row of a matrix; the answers are those of ``rebin``, which
    handles the rest.
    """
    out: list[dict[str, object] | None] = [None] * len(tensors)
    batches: dict[tuple[int, int], list[int]] = {}
    for i, (quantiles, own_edges, own_counts, *extremes) in enumerate(tensors):
        if quantiles and len(own_edges) == len(own_counts) + 1 and sum(own_counts) > 0:
            batches.setdefault((len(quantiles), len(own_edges)), []).append(i)
        else:
            out[i] = rebin(edges, quantiles, own_edges, own_counts, *extremes)
    edges = np.asarray(edges, dtype=np.float64)
    for rows in batches.values():
        counts = np.array([tensors[i][2] for i in rows], dtype=np.float64)
        extremes = np.array([[_as_extreme(value) for value in (tuple(tensors[i][3:5]) + (None, None))[:2]] for i in rows])
        xs, ps = _cdf_rows(np.array([tensors[i][0] for i in rows], dtype=np.float64),
                           np.array([tensors[i][1] for i in rows], dtype=np.float64), counts,
                           extremes[:, 0], extremes[:, 1])
        totals = counts.sum(axis=1)
        binned, below, above = _binned_rows(xs, ps, totals, edges)
        for row, i in enumerate(rows):
            out[i] = {"counts": binned[row], "below": float(below[row]), "above": float(above[row]),
                      "total": float(totals[row]), "approximate": False}
    return out
