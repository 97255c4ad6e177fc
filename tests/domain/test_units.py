"""One definition of each unit measure, shared by the failure tags and the signal page."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain.units import constant_fraction, dead_fraction, layer_diagnostics, saturated_fraction, unit_spread

OUTPUTS = np.array([[0.0, 1.0, 2.0, 0.5], [0.0, 3.0, 2.0, 0.0], [0.0, 1.0, 2.0, 0.0]])


def test_dead_is_a_relu_unit_at_zero_on_every_sample():
    assert dead_fraction(OUTPUTS, "relu") == 0.25  # only the all-zero column
    assert dead_fraction(OUTPUTS, "tanh") is None  # a tanh unit cannot die that way
    assert dead_fraction(np.zeros((3, 0)), "relu") is None


def test_constant_is_any_unit_with_one_output():
    assert constant_fraction(OUTPUTS) == 0.5  # the all-zero column and the all-2 column
    assert np.isnan(constant_fraction(np.array([[np.inf, 1.0], [np.inf, 2.0]])))  # an overflow is not "constant"
    with pytest.raises(ValueError, match="two samples"):
        constant_fraction(OUTPUTS[:1])


def test_saturation_is_near_the_bounds():
    outputs = np.array([[0.995, 0.5], [-0.999, 0.0]])
    assert saturated_fraction(outputs, "tanh") == 0.5
    assert saturated_fraction(np.array([[0.999, 0.5]]), "sigmoid") == 0.5
    assert saturated_fraction(outputs, "relu") is None


def test_identical_units_and_their_spread():
    same = np.ones((4, 3))
    assert unit_spread(same, np.zeros(3)) == 0.0
    assert unit_spread(np.zeros((4, 3)), np.zeros(3)) == 0.0
    different = np.array([[1.0, -1.0], [0.5, 0.5]])
    assert unit_spread(different, np.zeros(2)) == pytest.approx(2.0)
    assert unit_spread(np.ones((4, 1)), np.zeros(1)) is None
    record = layer_diagnostics("dense_0", 0, "relu", OUTPUTS, np.ones((5, 4)), np.zeros(4))
    assert record["units_identical"] is True and record["dead_fraction"] == 0.25 and record["units"] == 4


def test_length_and_correlation_of_pre_activations():
    from app.domain.units import length_and_correlation

    rng = np.random.default_rng(0)
    same = np.tile(rng.normal(size=(1, 200)), (10, 1))
    q, c = length_and_correlation(2.0 * same)
    assert q == pytest.approx(4 * np.mean(same ** 2)) and c == pytest.approx(1.0)
    q, c = length_and_correlation(rng.normal(0, 3, size=(64, 4000)))
    assert q == pytest.approx(9, rel=0.02) and abs(c) < 0.01  # independent samples: uncorrelated
    assert length_and_correlation(np.zeros((5, 3))) == (0.0, None)  # no direction: no correlation
    assert length_and_correlation(np.array([[np.nan, 1.0], [1.0, 2.0]])) == (None, None)
