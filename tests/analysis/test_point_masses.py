"""Point masses (constant tensors, ties, dead units) come out of every rebuilt view exactly.

Issue 9 §1: an all-zeros kernel came back with a 0 % percentile of -0.484375 (the edge of an
empty bin of its own histogram's ±0.5 range), and a constant 0.1 tensor fell wholly below
shared edges that start at its recorded min (0.10000000149011612, while its quantiles said
0.1). Every registry initializer's draw and mixtures of a point mass and a continuous part
are summarized by the worker's own recorder and checked against the recorded min and max and
the true counts (numpy on the raw values).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.analysis.histograms import (
    TENSORBOARD_PERCENTILES,
    percentiles,
    rebin,
    rebin_many,
    shared_edges,
)
from worker.training.stats import QUANTILES, tensor_summary

F32_TENTH = float(np.float32(0.1))  # 0.10000000149011612: what a recorded min of a 0.1 tensor is
MASS_VALUES = (0.0, 1.0, -0.5, F32_TENTH, float(np.float32(0.7)), float(np.float32(-3.3e-4)))


def _finite(values) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    return flat[np.isfinite(flat)].astype(np.float64)


def _legacy(summary: dict) -> dict:
    """The row as stored before the fix: every quantile at 7 significant digits."""
    quantiles = summary["quantiles"]
    return {**summary, "quantiles": None if quantiles is None else [float(f"{q:.7g}") for q in quantiles]}


def _edge_sets(finite: np.ndarray, mass: float | None) -> list[np.ndarray]:
    """Shared edges a study can produce: its range, a wider and a narrower one, and edges on the mass."""
    low, high = float(finite.min()), float(finite.max())
    span = high - low or 1.0
    sets = [shared_edges(low, high, 64), shared_edges(low - span, high + 0.5 * span, 37),
            shared_edges(low + 0.25 * span, high - 0.25 * span, 16)]
    if mass is not None:
        sets += [np.concatenate(([mass - span], np.linspace(mass, mass + span, 8))),  # on an interior edge
                 np.linspace(mass - span, mass, 9),  # on the last edge (closed)
                 np.linspace(mass, mass + 2 * span, 9)]  # on the first edge
    return sets


def _truth(finite: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int, int]:
    """np.histogram's counts on the edges, and the values left and right of them."""
    inside = finite[(finite >= edges[0]) & (finite <= edges[-1])]
    counts, _ = np.histogram(inside, bins=edges)
    return counts, int((finite < edges[0]).sum()), int((finite > edges[-1]).sum())


def _holding(edges: np.ndarray, value: float) -> int | None:
    """The bin holding ``value`` under np.histogram's rule ([a, b), the last [a, b]); None outside."""
    if value < edges[0] or value > edges[-1]:
        return None
    return min(int(np.searchsorted(edges, value, side="right")) - 1, edges.size - 2)


def check_tensor(values, mass: float | None = None, legacy: bool = False) -> None:
    """Every pure view of one tensor against its recorded min/max and numpy's counts.

    mass: a value held by at least 10 % of the tensor's entries. legacy: the row's quantiles
    as stored before the fix (the views then read the recorded min and max as well).
    """
    values = np.asarray(values, dtype=np.float32)
    summary = tensor_summary(values)
    if legacy:
        summary = _legacy(summary)
    finite = _finite(values)
    size, total = values.size, finite.size
    assert sum(summary["counts"]) == total and summary["nonfinite"] + total == size
    low, high = float(finite.min()), float(finite.max())
    if summary["nonfinite"] == 0:
        assert (summary["min"], summary["max"]) == (low, high)
    extremes = (summary["min"], summary["max"]) if legacy else ()
    if not legacy:
        assert (summary["quantiles"][0], summary["quantiles"][-1]) == (low, high), "the ends are stored exactly"

    found, _ = percentiles(summary["quantiles"], summary["edges"], summary["counts"], TENSORBOARD_PERCENTILES, *extremes)
    if legacy and not (np.isfinite(summary["min"]) and np.isfinite(summary["max"])):
        # An old diverged row: without a finite recorded min/max, the exact ends come from its
        # own histogram's end edges, which a constant tensor lacks (its 7-digit quantiles remain).
        assert found[0] in (low, float(f"{low:.7g}")) and found[-1] in (high, float(f"{high:.7g}")), found
        low, high = found[0], found[-1]
    assert (found[0], found[-1]) == (low, high), found
    assert all(low <= value <= high for value in found) and found == sorted(found), found
    if low == high:
        assert found == [low] * len(TENSORBOARD_PERCENTILES)
    # Old rows hold an exact value at a finite recorded min or max only (inner ones have 7 digits).
    exact_mass = mass if not legacy or mass in (low, high) else None
    if mass is not None:
        ordered = np.sort(finite)
        before = np.searchsorted(ordered, mass, "left") / total
        through = np.searchsorted(ordered, mass, "right") / total
        slack = 1 / QUANTILES + 1 / total
        for fraction, value in zip(TENSORBOARD_PERCENTILES, found):
            if before + slack < fraction < through - slack:
                assert value == (mass if exact_mass is not None else pytest.approx(mass, rel=1e-6)), (fraction, value)

    items = [(summary["quantiles"], summary["edges"], summary["counts"], *extremes)]
    if mass is not None and exact_mass is None:
        # Against shared edges, such a row's point mass sits where its 7 digits put it.
        finite, mass = np.where(finite == mass, float(f"{mass:.7g}"), finite), float(f"{mass:.7g}")
    for edges in _edge_sets(finite, exact_mass):
        binned = rebin(edges, *items[0])
        together = rebin_many(edges, items)[0]
        truth, below, above = _truth(finite, edges)
        assert binned["total"] == total
        assert binned["counts"].sum() + binned["below"] + binned["above"] == pytest.approx(total, abs=1e-6 * total)
        assert together["counts"] == pytest.approx(binned["counts"], abs=1e-6 * total)
        assert (together["below"], together["above"]) == pytest.approx((binned["below"], binned["above"]), abs=1e-6 * total)
        # The CDF is pinned within 1/Q of the values at every edge (and within one value where
        # a quantile step is shorter than that), so a bin within twice that.
        bound = 2 * (total / QUANTILES + 1) + 1e-6 * total
        assert np.abs(binned["counts"] - truth).max() <= bound
        assert abs(binned["below"] - below) <= bound / 2 and abs(binned["above"] - above) <= bound / 2
        if mass is None:
            continue
        share = int((finite == mass).sum())
        where = _holding(edges, mass)
        if where is None:
            assert (binned["below"] if mass < edges[0] else binned["above"]) >= share - bound
        else:
            assert binned["counts"][where] >= share - bound, (where, binned["counts"], share)
        if low == high:  # a constant: whole, in that one bin (or whole outside), not a value elsewhere
            expected = np.zeros(edges.size - 1)
            if where is not None:
                expected[where] = total
            assert binned["counts"].tolist() == expected.tolist()
            assert (binned["below"], binned["above"]) == ((total, 0) if mass < edges[0] else (0, total) if mass > edges[-1] else (0, 0))


# ---------------------------------------------------------------- the registry's draws


def _registry_draws() -> dict[str, np.ndarray]:
    from app.domain.registry import REGISTRY
    from app.domain.spec import InitializerRef
    from worker.training.initializers import build

    refs = [(key, InitializerRef(id=key)) for key in REGISTRY]
    refs += [(f"constant {value}", InitializerRef(id="constant", params={"value": value}))
             for value in (0.1, -0.5, 1e-3, 2.5, -7.25)]
    refs.append(("custom constant", InitializerRef(id="custom", params={"distribution": "constant", "mode": "fan_in",
                                                                          "scale": 2.0})))
    draws = {}
    for name, ref in refs:
        draws[f"{name} kernel"] = np.asarray(build(ref, 7)((48, 20)), dtype=np.float32)
        if not REGISTRY[ref.id].kernel_only:
            draws[f"{name} bias"] = np.asarray(build(ref, 7)((20,)), dtype=np.float32)
    return draws


@pytest.fixture(scope="module")
def registry_draws() -> dict[str, np.ndarray]:
    return _registry_draws()


@pytest.mark.parametrize("legacy", [False, True], ids=["stored now", "stored before the fix"])
def test_every_registry_initializer_comes_out_at_its_recorded_extremes(registry_draws, legacy):
    constants = 0
    for name, values in registry_draws.items():
        distinct = np.unique(values)
        mass = float(distinct[0]) if distinct.size == 1 else None
        constants += mass is not None
        try:
            check_tensor(values, mass, legacy=legacy)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from error
    # zeros, ones, constant (its default and 5 values), custom constant: kernels and biases
    assert constants == 2 * 9


def test_the_issue_zeros_kernel_and_zero_bias():
    for values in (np.zeros((784, 128), dtype=np.float32), np.zeros(128, dtype=np.float32)):
        summary = tensor_summary(values)
        found, approximate = percentiles(summary["quantiles"], summary["edges"], summary["counts"])
        assert found == [0.0] * 9 and not approximate
    check_tensor(np.zeros((784, 128)), 0.0)


def test_a_constant_point_one_is_inside_edges_that_start_at_its_recorded_min():
    summary = tensor_summary(np.full(500, 0.1, dtype=np.float32))
    assert summary["min"] == summary["max"] == F32_TENTH
    edges = shared_edges(summary["min"], 1.0, 8)  # a study whose other run is `ones`
    binned = rebin(edges, summary["quantiles"], summary["edges"], summary["counts"])
    assert binned["counts"][0] == 500 and binned["below"] == 0 and binned["counts"][1:].sum() == 0


# ---------------------------------------------------------------- mixtures


@st.composite
def mixtures(draw):
    size = draw(st.integers(min_value=20, max_value=4000))
    share = draw(st.floats(min_value=0.1, max_value=0.9))
    mass = draw(st.sampled_from(MASS_VALUES))
    seed = draw(st.integers(min_value=0, max_value=2**31))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 0.05, 1.0, 30.0]))
    rest = rng.normal(mass, scale, size) if draw(st.booleans()) else rng.uniform(mass - scale, mass + 3 * scale, size)
    values = np.where(rng.random(size) < share, mass, rest).astype(np.float32)
    values[rng.integers(0, size)] = mass  # the mass is there at any share
    if draw(st.booleans()):
        # A diverging tensor: some NaN/Inf, never all of it.
        bad = rng.random(size) < draw(st.floats(min_value=0.0, max_value=0.3))
        bad[values == mass] = False
        values[bad] = rng.choice([np.nan, np.inf, -np.inf], size=int(bad.sum()))
    return values, mass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixtures(), st.booleans())
def test_a_point_mass_plus_a_continuous_part(case, legacy):
    values, mass = case
    check_tensor(values, mass if (values == mass).mean() >= 0.1 else None, legacy=legacy)


def test_dead_relu_like_and_all_nonfinite_tensors():
    rng = np.random.default_rng(5)
    dead = np.maximum(rng.normal(-0.3, 0.5, size=(256, 64)), 0.0)  # ~73 % exact zeros at the minimum
    check_tensor(dead, 0.0)
    check_tensor(-dead, 0.0)  # the mass at the maximum
    ones = np.ones((64, 32))
    ones[:, :8] = rng.normal(1.0, 0.1, size=(64, 8))
    check_tensor(ones, 1.0)
    tiny = np.full(1, 3.5)
    check_tensor(tiny, 3.5)
    summary = tensor_summary(np.array([np.nan, np.inf]))
    assert rebin(shared_edges(0, 1, 4), summary["quantiles"], summary["edges"], summary["counts"]) is None


def test_a_constant_at_float32s_limits():
    check_tensor(np.full(50, 1e30), float(np.float32(1e30)))
    check_tensor(np.full(50, -3e38), float(np.float32(-3e38)))


def test_rows_with_only_a_histogram_use_the_recorded_extremes():
    """Rows stored before quantiles existed: approximate, but never outside [min, max]."""
    for values in (np.zeros(300), np.full(300, 0.1), np.maximum(np.random.default_rng(2).normal(size=300), 0)):
        summary = tensor_summary(values.astype(np.float32))
        found, approximate = percentiles(None, summary["edges"], summary["counts"], TENSORBOARD_PERCENTILES,
                                         summary["min"], summary["max"])
        assert approximate and (found[0], found[-1]) == (summary["min"], summary["max"])
        assert all(summary["min"] <= value <= summary["max"] for value in found)
        edges = shared_edges(summary["min"], summary["max"], 16)
        binned = rebin(edges, None, summary["edges"], summary["counts"], summary["min"], summary["max"])
        assert binned["counts"].sum() == pytest.approx(300) and binned["below"] == binned["above"] == 0
        if summary["min"] == summary["max"]:
            assert binned["counts"][8] == 300, "the one bin holding the value"
        # Without the extremes (a diverged row): the occupied bins bound the answer.
        found, _ = percentiles(None, summary["edges"], summary["counts"])
        width = summary["edges"][1] - summary["edges"][0]
        assert summary["min"] - width <= found[0] <= found[-1] <= summary["max"] + width


# ---------------------------------------------------------------- a real training


@pytest.mark.slow
def test_a_real_training_records_point_masses_that_every_view_reads_exactly(data_dir):
    """Seed 001's check (162 of 792 tensors disagreed), at small scale, on the training core."""
    from app.domain.spec import run_setup
    from worker.training.sink import MemorySink
    from worker.training.trainer import train_group

    common = {"dataset": "mnist", "train_samples": 300, "validation_samples": 100, "hidden_units": [16, 8],
              "epochs": 1, "batch_size": 32}
    setups = [run_setup(1, 0, initializer="zeros", **common), run_setup(2, 0, initializer="ones", **common),
              run_setup(3, 0, initializer="constant", initializer_params={"value": 0.1}, **common),
              run_setup(4, 0, initializer="he_normal", bias_initializer="constant",
                        bias_initializer_params={"value": -0.5}, **common)]
    sink = MemorySink()
    train_group(setups, sink, data_dir=data_dir)
    checked = disagree = 0
    for epochs in sink.layers.values():
        for rows in epochs.values():
            for row in rows:
                if row["kind"] not in ("kernel", "bias"):
                    continue
                checked += 1
                found, _ = percentiles(row["quantiles"], row["edges"], row["counts"])
                size = sum(row["counts"]) + row["nonfinite"]
                edges = shared_edges(row["min"], row["max"], 64)
                binned = rebin(edges, row["quantiles"], row["edges"], row["counts"])
                good = (found[0] == row["min"] and found[-1] == row["max"] and sum(row["counts"]) == size
                        and binned["counts"].sum() + binned["below"] + binned["above"] == pytest.approx(size)
                        and binned["below"] == binned["above"] == 0)
                if row["min"] == row["max"]:
                    good = good and found == [row["min"]] * 9
                disagree += not good
    assert sorted(sink.layers) == [1, 2, 3, 4] and all(sorted(epochs) == [0, 1] for epochs in sink.layers.values())
    assert checked == 4 * 2 * 3 * 2 and disagree == 0, f"{disagree} of {checked} tensors disagree"
