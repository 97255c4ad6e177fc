"""Unit diagnostics recorded by real tiny trainings: dead, saturated and identical units.

300 Fashion-MNIST images, a 32-16 MLP, 1-2 epochs. Each run is checked against what its
initialization implies (zeros: every ReLU unit dead and identical; He: units differ and
few are dead), and a group must record what its runs record alone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.domain.spec import RunSetup, run_setup
from worker.training.sink import MemorySink
from worker.training.trainer import train_group

pytestmark = pytest.mark.slow

LAYERS = ["dense_0", "dense_1", "output"]
KEYS = {"layer", "index", "activation", "units", "dead_fraction", "saturated_fraction", "mean", "std",
        "unit_spread", "units_identical", "preact_length", "preact_correlation"}


def config(run_id: int = 1, seed: int = 3, initializer: str = "he_normal", **overrides) -> RunSetup:
    settings = dict(run_id=run_id, seed=seed, dataset="fashion_mnist", train_samples=300, validation_samples=200,
                    hidden_units=[32, 16], epochs=2, batch_size=32, initializer=initializer)
    settings.update(overrides)
    return run_setup(**settings)


def trained(data, *configs) -> MemorySink:
    sink = MemorySink()
    for run in configs:
        train_group([run], sink, data=data)
    return sink


def by_layer(sink: MemorySink, run_id: int, epoch: int) -> dict[str, dict]:
    return {row["layer"]: row for row in sink.diagnostics[run_id][epoch]}


def test_every_recorded_epoch_has_one_record_per_dense_layer(data):
    sink = trained(data, config(dropout=0.2))
    assert sorted(sink.diagnostics[1]) == sorted(sink.layers[1]) == [0, 1, 2]
    for epoch, rows in sink.diagnostics[1].items():
        assert [row["layer"] for row in rows] == LAYERS and [row["index"] for row in rows] == [0, 1, 2]
        assert all(set(row) == KEYS for row in rows)
        assert [row["units"] for row in rows] == [32, 16, 10]
        assert [row["activation"] for row in rows] == ["relu", "relu", "linear"]
        for row in rows[:2]:
            assert 0.0 <= row["dead_fraction"] <= 1.0 and row["saturated_fraction"] is None
        assert rows[2]["dead_fraction"] is None  # logits: no activation to die in


def test_he_normal_units_differ_and_mostly_live(data):
    sink = trained(data, config())
    for epoch in (0, 2):
        rows = by_layer(sink, 1, epoch)
        for name in LAYERS:
            assert rows[name]["units_identical"] is False and rows[name]["unit_spread"] > 0.1, (epoch, name)
        assert rows["dense_0"]["dead_fraction"] < 0.5 and rows["dense_0"]["std"] > 0


def test_zeros_units_are_dead_and_identical_until_the_end(data):
    sink = trained(data, config(initializer="zeros", output_initializer="glorot_uniform"))
    for epoch in (0, 1, 2):
        rows = by_layer(sink, 1, epoch)
        for name in ("dense_0", "dense_1"):
            assert rows[name]["units_identical"] is True and rows[name]["unit_spread"] == 0.0
            assert rows[name]["dead_fraction"] == 1.0 and rows[name]["mean"] == 0.0
    assert by_layer(sink, 1, 0)["output"]["units_identical"] is False  # Glorot's own output layer


def test_ones_stay_symmetric_in_the_hidden_layers(data):
    sink = trained(data, config(initializer="ones"))
    at_init, last = by_layer(sink, 1, 0), by_layer(sink, 1, max(sink.diagnostics[1]))
    assert all(at_init[name]["units_identical"] for name in LAYERS)
    # The output layer's biases get different gradients (one per class) and tell its units
    # apart; the hidden layers behind it can never be.
    assert last["output"]["units_identical"] is False
    assert last["dense_0"]["units_identical"] and last["dense_1"]["units_identical"]


def test_sigmoid_with_a_huge_scale_saturates_and_tanh_with_he_does_not(data):
    sink = trained(data, config(1, initializer="random_normal", initializer_params={"stddev": 10.0}, activation="sigmoid",
                                epochs=1),
                   config(2, initializer="lecun_normal", activation="tanh", epochs=1))
    huge, calm = by_layer(sink, 1, 0), by_layer(sink, 2, 0)
    assert huge["dense_0"]["saturated_fraction"] > 0.5 and huge["dense_0"]["dead_fraction"] is None
    assert calm["dense_0"]["saturated_fraction"] < 0.1
    # Sigmoid outputs live in (0, 1): their mean is a share, not a sign of saturation alone.
    assert 0.0 < huge["dense_0"]["mean"] < 1.0


def test_a_diverged_epoch_is_recorded_with_unknown_symmetry(data):
    sink = trained(data, config(initializer="ones", activation="linear", optimizer="sgd", learning_rate=0.1, epochs=3))
    assert sorted(sink.diagnostics[1]) == [0, 1]
    rows = by_layer(sink, 1, 1)
    assert math.isnan(rows["dense_0"]["mean"]) and rows["dense_0"]["units_identical"] is None
    assert by_layer(sink, 1, 0)["dense_0"]["units_identical"] is True


def test_grouped_runs_record_what_they_record_alone(data):
    runs = [config(1, 0, "he_normal"), config(2, 1, "zeros"), config(3, 2, "ones", dropout=0.0),
            config(4, 3, "random_normal", initializer_params={"stddev": 0.01})]
    fused = MemorySink()
    train_group(runs, fused, data=data)
    alone = trained(data, *runs)
    for run in runs:
        assert sorted(fused.diagnostics[run.run_id]) == sorted(alone.diagnostics[run.run_id]) == [0, 1, 2]
        for epoch, want in alone.diagnostics[run.run_id].items():
            got = fused.diagnostics[run.run_id][epoch]
            assert [r["layer"] for r in want] == LAYERS, (run.run_id, epoch)
            assert [(r["layer"], r["activation"], r["units"]) for r in got] == [(r["layer"], r["activation"], r["units"]) for r in want]
            for a, b in zip(got, want):
                where = (run.run_id, epoch, a["layer"])
                assert a["units_identical"] == b["units_identical"], where
                for name in ("dead_fraction", "saturated_fraction"):
                    # A unit on the edge of zero may flip with float rounding: at most one unit apart.
                    assert (a[name] is None) == (b[name] is None) and abs((a[name] or 0) - (b[name] or 0)) <= 1 / a["units"], where
                assert np.isclose(a["mean"], b["mean"], rtol=1e-4, atol=1e-6), where
                assert np.isclose(a["std"], b["std"], rtol=1e-4, atol=1e-6), where
