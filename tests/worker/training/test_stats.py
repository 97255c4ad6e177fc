"""Tensor summaries survive every tensor a diverging run can produce."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from worker.training.stats import HISTOGRAM_BINS, QUANTILES, gradient_summary, tensor_summary

KEYS = {"mean", "std", "min", "max", "l2", "edges", "counts", "nonfinite", "quantiles"}


def test_normal_tensor_summary_matches_numpy():
    values = np.random.default_rng(0).normal(0.5, 2.0, size=(300, 40)).astype(np.float32)
    summary = tensor_summary(values)
    assert set(summary) == KEYS
    assert len(summary["edges"]) == HISTOGRAM_BINS + 1 == 65
    assert len(summary["counts"]) == HISTOGRAM_BINS
    assert sum(summary["counts"]) == values.size
    assert summary["nonfinite"] == 0
    assert summary["mean"] == pytest.approx(values.mean(dtype=np.float64))
    assert summary["std"] == pytest.approx(values.std(dtype=np.float64))
    assert summary["min"] == pytest.approx(float(values.min()))
    assert summary["max"] == pytest.approx(float(values.max()))
    assert summary["l2"] == pytest.approx(float(np.linalg.norm(values.astype(np.float64))))
    assert summary["edges"][0] == summary["min"] and summary["edges"][-1] == summary["max"]


def test_nan_and_inf_are_counted_not_raised():
    values = np.array([1.0, 2.0, np.nan, np.inf, -np.inf, 3.0], dtype=np.float32)
    summary = tensor_summary(values)
    assert summary["nonfinite"] == 3
    assert sum(summary["counts"]) == 3, "the histogram covers the finite values"
    assert summary["edges"][0] == 1.0 and summary["edges"][-1] == 3.0
    assert math.isnan(summary["mean"]), "a NaN weight must show in the mean"
    assert math.isnan(summary["std"])


def test_all_nonfinite_tensor_gets_an_empty_histogram():
    summary = tensor_summary(np.full((4, 4), np.nan))
    assert summary["nonfinite"] == 16
    assert sum(summary["counts"]) == 0 and len(summary["counts"]) == HISTOGRAM_BINS
    assert summary["edges"][0] == 0.0 and summary["edges"][-1] == 1.0
    assert len(summary["edges"]) == HISTOGRAM_BINS + 1


def test_inf_only_gives_infinite_extremes():
    summary = tensor_summary(np.array([np.inf, 1.0]))
    assert summary["max"] == math.inf and summary["l2"] == math.inf
    assert summary["nonfinite"] == 1


def test_constant_tensor_has_a_valid_histogram():
    summary = tensor_summary(np.zeros((784, 128), dtype=np.float32))
    assert summary["std"] == 0.0 and summary["l2"] == 0.0
    assert sum(summary["counts"]) == 784 * 128
    assert len(summary["edges"]) == 65
    assert summary["edges"][0] < 0.0 < summary["edges"][-1]


def test_gradient_summary_has_norm_and_histogram():
    grad = np.array([[3.0, 4.0]])
    summary = gradient_summary(grad)
    assert summary["norm"] == summary["l2"] == pytest.approx(5.0)
    assert set(summary) == KEYS | {"norm"}
    assert sum(summary["counts"]) == 2


def test_summaries_are_plain_json():
    values = np.array([[0.1, np.nan], [np.inf, -2.0]], dtype=np.float32)
    for summary, keys in ((tensor_summary(values), KEYS), (gradient_summary(values), KEYS | {"norm"})):
        assert set(summary) == keys
        for key, value in summary.items():
            if isinstance(value, list):
                assert all(type(item) in (int, float) for item in value), key
            elif value is None:
                assert key == "quantiles", key
            else:
                assert type(value) in (int, float), key
        json.loads(json.dumps(summary))


def test_custom_bin_count_and_empty_tensor():
    assert len(tensor_summary(np.arange(10.0), bins=5)["counts"]) == 5
    empty = tensor_summary(np.array([]))
    assert sum(empty["counts"]) == 0 and empty["nonfinite"] == 0


def test_histogram_is_numpys_own():
    """Counted on the sorted values, the histogram must equal np.histogram's, bin for bin."""
    rng = np.random.default_rng(3)
    for values in (rng.normal(0, 0.05, size=(784, 128)).astype(np.float32),
                   rng.integers(0, 5, size=999).astype(np.float32),  # values right on the edges
                   np.array([0.25] * 7 + [np.nan])):
        summary = tensor_summary(values)
        finite = values.reshape(-1)[np.isfinite(values.reshape(-1))]
        counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
        assert summary["counts"] == counts.tolist()
        assert summary["edges"] == pytest.approx(edges.tolist())


def test_quantiles_are_numpys_evenly_spaced_quantiles_of_the_finite_values():
    values = np.random.default_rng(4).standard_t(3, size=(300, 70)).astype(np.float32)
    values[0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    summary = tensor_summary(values)
    finite = values[np.isfinite(values)].astype(np.float64)
    expected = np.quantile(finite, np.linspace(0, 1, QUANTILES + 1))
    assert len(summary["quantiles"]) == QUANTILES + 1 == 129
    assert summary["quantiles"] == pytest.approx(expected.tolist(), rel=1e-6, abs=1e-12)
    assert summary["quantiles"][0] == pytest.approx(float(finite.min()))
    assert summary["quantiles"][-1] == pytest.approx(float(finite.max()))
    assert all(a <= b for a, b in zip(summary["quantiles"], summary["quantiles"][1:])), "must stay sorted"
    assert len(tensor_summary(values, quantiles=16)["quantiles"]) == 17


def test_quantiles_of_constant_and_empty_tensors():
    assert tensor_summary(np.zeros((20, 5)))["quantiles"] == [0.0] * (QUANTILES + 1)
    assert tensor_summary(np.full(3, np.nan))["quantiles"] is None
    assert tensor_summary(np.array([]))["quantiles"] is None
    assert gradient_summary(np.ones(4))["quantiles"] == [1.0] * (QUANTILES + 1)


def test_weights_near_float32_limits_still_get_a_histogram():
    # A run on its way to diverging: numpy cannot make ±0.5 bins around 1e30 in float32,
    # and the span of ±3e38 overflows float32.
    for values in (np.full(50, 1e30, dtype=np.float32), np.array([-3e38, 0.0, 3e38], dtype=np.float32)):
        summary = tensor_summary(values)
        edges = np.array(summary["edges"])
        assert np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)
        assert sum(summary["counts"]) == values.size


def test_a_value_of_the_tensor_is_stored_exactly_among_the_quantiles():
    """The ends and every quantile inside a run of equal values are the float32 values themselves.

    7 digits would store a float32 0.1 as 0.1, a smaller number than its recorded min
    (0.10000000149011612): percentiles and shared-edge bins then disagreed with min and max.
    """
    tenth = tensor_summary(np.full((30, 20), 0.1, dtype=np.float32))
    assert tenth["min"] == tenth["max"] == float(np.float32(0.1)) == 0.10000000149011612
    assert tenth["quantiles"] == [tenth["min"]] * (QUANTILES + 1)
    rng = np.random.default_rng(8)
    values = rng.normal(0, 0.3, size=(200, 50)).astype(np.float32)
    values[rng.random(values.shape) < 0.4] = np.float32(0.7)  # a point mass inside the range
    values[0, :3] = [np.nan, np.inf, -np.inf]
    summary = tensor_summary(values)
    finite = values[np.isfinite(values)].astype(np.float64)
    quantiles = summary["quantiles"]
    assert (quantiles[0], quantiles[-1]) == (finite.min(), finite.max()), "exact, though the recorded min/max are inf"
    spike = [q for q in quantiles if abs(q - 0.7) < 1e-6]
    assert len(spike) >= 0.4 * QUANTILES - 2 and set(spike) == {float(np.float32(0.7))}
    assert quantiles == pytest.approx(np.quantile(finite, np.linspace(0, 1, QUANTILES + 1)).tolist(), rel=1e-6, abs=1e-12)
    assert quantiles == sorted(quantiles)


def test_quantiles_between_two_values_stay_short_and_between_them():
    values = np.random.default_rng(9).normal(0, 0.05, size=(784, 128)).astype(np.float32)
    summary = tensor_summary(values)
    quantiles, ordered = summary["quantiles"], np.sort(values.reshape(-1)).astype(np.float64)
    position = np.linspace(0, ordered.size - 1, QUANTILES + 1)
    low, high = ordered[np.floor(position).astype(int)], ordered[np.ceil(position).astype(int)]
    assert np.all((low <= quantiles) & (quantiles <= high))
    # Only the ends, ties and the odd quantile whose two values are closer than 7 digits tell
    # apart (clipped onto one of them) have more digits: the row stays about 1.6 kB.
    assert quantiles[0] == ordered[0] and quantiles[-1] == ordered[-1]
    assert sum(float(f"{q:.7g}") != q for q in quantiles) < 8
    assert len(json.dumps(quantiles)) < 1800
