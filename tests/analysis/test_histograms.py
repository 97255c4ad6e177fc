"""Shared-edge histograms and percentile bands rebuilt from stored quantiles, against numpy on the raw values."""

from __future__ import annotations

import numpy as np
import pytest

from app.analysis.histograms import (
    TENSORBOARD_PERCENTILES,
    cdf_points,
    percentiles,
    rebin,
    robust_range,
    shared_edges,
)
from worker.training.stats import QUANTILES, tensor_summary

TENSORS = {
    "he normal kernel": np.random.default_rng(0).normal(0, np.sqrt(2 / 784), size=(784, 128)),
    "heavy tails": np.random.default_rng(1).standard_t(2, size=(300, 40)),
    "uniform [0, 1]": np.random.default_rng(2).uniform(0, 1, size=(128, 64)),
    "five values": np.random.default_rng(3).integers(-2, 3, size=(50, 20)).astype(float),
}


def _binned(values: np.ndarray, edges: np.ndarray, quantiles: bool = True) -> dict:
    summary = tensor_summary(values)
    return rebin(edges, summary["quantiles"] if quantiles else None, summary["edges"], summary["counts"])


@pytest.mark.parametrize("name", TENSORS)
def test_counts_on_shared_edges_are_within_two_over_q_of_numpys(name):
    values = TENSORS[name].astype(np.float32)
    low, high = float(values.min()), float(values.max())
    for edges in (shared_edges(low, high, 64), shared_edges(low - 0.3 * (high - low), high, 37)):
        truth, _ = np.histogram(values, bins=edges)
        binned = _binned(values, edges)
        assert not binned["approximate"]
        assert binned["total"] == values.size
        assert binned["counts"].sum() + binned["below"] + binned["above"] == pytest.approx(values.size)
        # The CDF is pinned within 1/Q at every edge, so a bin is within 2/Q of the values.
        assert np.abs(binned["counts"] - truth).max() <= 2 * values.size / QUANTILES + 1


def test_the_bulk_is_much_better_than_the_bound():
    values = TENSORS["he normal kernel"].astype(np.float32)
    edges = shared_edges(-0.2, 0.2, 64)
    truth, _ = np.histogram(values, bins=edges)
    error = np.abs(_binned(values, edges)["counts"] - truth).max()
    assert error < 0.002 * values.size, error


def test_values_outside_a_narrow_range_are_counted_apart():
    values = TENSORS["heavy tails"].astype(np.float32)
    edges = shared_edges(-1.0, 1.0, 32)
    binned = _binned(values, edges)
    bound = 2 * values.size / QUANTILES
    assert binned["below"] == pytest.approx(float((values < -1).sum()), abs=bound)
    assert binned["above"] == pytest.approx(float((values > 1).sum()), abs=bound)


def test_a_constant_tensor_is_a_point_mass_in_one_bin():
    edges = shared_edges(-0.1, 0.1, 20)
    binned = _binned(np.zeros((784, 64), dtype=np.float32), edges)
    assert binned["counts"][10] == pytest.approx(784 * 64) and binned["counts"].sum() == pytest.approx(784 * 64)
    ones = _binned(np.ones(100, dtype=np.float32), shared_edges(0.0, 1.0, 4))
    assert ones["counts"].tolist() == pytest.approx([0, 0, 0, 100]), "the last bin is closed on the right, as in numpy"


def test_rows_without_quantiles_fall_back_to_their_own_histogram_flagged_approximate():
    values = TENSORS["uniform [0, 1]"].astype(np.float32)
    edges = shared_edges(0.0, 1.0, 16)
    binned = _binned(values, edges, quantiles=False)
    truth, _ = np.histogram(values, bins=edges)
    assert binned["approximate"]
    assert binned["counts"].sum() == pytest.approx(values.size)
    assert np.abs(binned["counts"] - truth).max() < 0.02 * values.size


def test_no_finite_value_gives_nothing():
    summary = tensor_summary(np.full(10, np.nan))
    assert rebin(shared_edges(0, 1, 8), summary["quantiles"], summary["edges"], summary["counts"]) is None
    assert percentiles(summary["quantiles"], summary["edges"], summary["counts"]) is None
    assert cdf_points(None, [0.0, 1.0], [0]) is None


@pytest.mark.parametrize("name", TENSORS)
def test_percentiles_match_numpy_within_one_quantile_step(name):
    values = TENSORS[name].astype(np.float32).reshape(-1)
    summary = tensor_summary(values)
    found, approximate = percentiles(summary["quantiles"], summary["edges"], summary["counts"])
    assert not approximate and len(found) == 9
    assert found[0] == pytest.approx(values.min()) and found[-1] == pytest.approx(values.max())
    assert found == sorted(found)
    ordered = np.sort(values)
    slack = 1 / QUANTILES + 1 / values.size
    for fraction, value in zip(TENSORBOARD_PERCENTILES, found):
        # value is a p-quantile when F(value-) <= p <= F(value), within the 1/Q the quantiles pin
        below = np.searchsorted(ordered, value, side="left") / values.size
        up_to = np.searchsorted(ordered, value, side="right") / values.size
        assert below - slack <= fraction <= up_to + slack, (fraction, value, below, up_to)


def test_percentiles_from_a_histogram_alone_are_approximate():
    values = TENSORS["uniform [0, 1]"].astype(np.float32).reshape(-1)
    summary = tensor_summary(values)
    found, approximate = percentiles(None, summary["edges"], summary["counts"])
    assert approximate
    assert found[4] == pytest.approx(np.median(values), abs=1 / 64)


def test_shared_edges_and_robust_range():
    assert shared_edges(2.0, 2.0, 4).tolist() == [1.5, 1.75, 2.0, 2.25, 2.5]
    assert shared_edges(float("nan"), 1.0, 2).tolist() == [0.0, 0.5, 1.0]
    # mean +- 4 std, clipped to each tensor's own min..max, enveloped over tensors
    assert robust_range([(0.0, 0.1, -5.0, 5.0), (0.2, 0.01, 0.15, 0.3)]) == pytest.approx((-0.4, 0.4))
    assert robust_range([(0.0, 1.0, -0.5, 0.5)]) == (-0.5, 0.5)
    assert robust_range([]) == (0.0, 1.0)


def test_many_tensors_at_once_match_one_at_a_time():
    from app.analysis.histograms import rebin_many

    rng = np.random.default_rng(9)
    tensors = [rng.normal(0, s, size=(200, 30)).astype(np.float32) for s in (0.01, 0.1, 0.5)]
    tensors += [np.zeros((10, 10), dtype=np.float32), rng.integers(-2, 3, size=500).astype(np.float32)]
    summaries = [tensor_summary(t) for t in tensors]
    items = [(s["quantiles"], s["edges"], s["counts"]) for s in summaries]
    items.append((None, summaries[0]["edges"], summaries[0]["counts"]))  # an old row: done one at a time
    items.append((None, [0.0, 1.0], [0]))  # nothing finite
    for edges in (shared_edges(-2.0, 2.0, 64), shared_edges(-0.05, 0.05, 16)):
        together = rebin_many(edges, items)
        for item, found in zip(items, together):
            alone = rebin(edges, *item)
            if alone is None:
                assert found is None
                continue
            assert found["approximate"] == alone["approximate"]
            assert found["counts"] == pytest.approx(alone["counts"], abs=1e-6)
            assert (found["below"], found["above"], found["total"]) == pytest.approx((alone["below"], alone["above"], alone["total"]))


def test_many_rows_with_their_recorded_extremes_match_one_at_a_time():
    """Rows stored with 7-digit quantiles need their recorded min/max; batched or not, the same answer."""
    from app.analysis.histograms import rebin_many

    rng = np.random.default_rng(10)
    tensors = [np.full((20, 10), 0.1), np.where(rng.random(400) < 0.6, 0.7, rng.normal(0.7, 0.2, 400)),
               rng.normal(0, 0.1, size=(30, 30)), np.array([np.nan, 0.1, 0.1, 0.3])]
    items = []
    for values in tensors:
        summary = tensor_summary(values.astype(np.float32))
        legacy = [float(f"{q:.7g}") for q in summary["quantiles"]]
        items.append((legacy, summary["edges"], summary["counts"], summary["min"], summary["max"]))
    edges = shared_edges(float(np.float32(0.1)), 1.2, 32)  # starts at the 0.1 tensor's recorded min
    together = rebin_many(edges, items)
    for item, found in zip(items, together):
        alone = rebin(edges, *item)
        assert found["counts"] == pytest.approx(alone["counts"], abs=1e-9)
        assert (found["below"], found["above"]) == pytest.approx((alone["below"], alone["above"]), abs=1e-9)
    assert together[0]["counts"][0] == 200 and together[0]["below"] == 0, "the constant is inside, in the first bin"
