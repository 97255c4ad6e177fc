"""Every registry entry's weights match the closed-form distribution the domain derives from its recipe.

Real Keras initializers (the worker's) draw real tensors; the KS statistic is computed from
the same 129 quantiles the worker stores, as the study page does. A wrong pairing must be
flagged: that is what makes the check catch registry bugs.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.domain.registry import REGISTRY
from app.domain.theory import density_on, ks_from_quantiles, mismatch_threshold, theory_for
from support.draw import draw
from worker.training.stats import tensor_summary

KERNEL = (784, 128)
THRESHOLD = mismatch_threshold(784 * 128, 129)
DATA_DEPENDENT = {"lsuv"}  # rescaled on a data batch after the draw: no closed form


def drawn_quantiles(init_id: str, shape=KERNEL, seed: int = 3, params: dict | None = None) -> list[float]:
    return tensor_summary(draw(init_id, params, seed, shape).astype(np.float32))["quantiles"]


@pytest.mark.parametrize("init_id", sorted(set(REGISTRY) - DATA_DEPENDENT - {"custom"}))
def test_each_initializer_matches_its_theory(init_id):
    theory = theory_for(init_id, {}, KERNEL)
    assert theory is not None, init_id
    ks = ks_from_quantiles(drawn_quantiles(init_id), theory)
    assert ks < THRESHOLD, (init_id, theory.label, ks)


@pytest.mark.parametrize("drawn, promised", [
    ("he_uniform", "glorot_uniform"),       # limits only 8 % apart on a 784 x 128 kernel
    ("he_normal", "he_normal_untruncated"),  # truncated vs not, same variance: the tails differ
    ("glorot_uniform", "glorot_normal"),    # right variance, wrong shape
    ("lecun_normal", "he_normal"),          # a missing factor 2
    ("ones", "zeros"),
])
def test_a_wrong_pairing_is_flagged(drawn, promised):
    ks = ks_from_quantiles(drawn_quantiles(drawn), theory_for(promised, {}, KERNEL))
    assert ks > THRESHOLD, (drawn, promised, ks)


def test_bias_vectors_use_keras_fan_rule_and_params_are_honoured():
    theory = theory_for("random_uniform", {"minval": -0.2, "maxval": 0.6}, (64,))
    assert theory.dist.support() == pytest.approx((-0.2, 0.6))
    values = draw("random_uniform", {"minval": -0.2, "maxval": 0.6}, 1, (4096,))
    assert ks_from_quantiles(tensor_summary(values)["quantiles"], theory) < mismatch_threshold(4096, 129)
    curve = density_on(theory, -1.0, 1.0)
    inside = [y for x, y in zip(curve["x"], curve["y"]) if -0.19 < x < 0.59]
    assert inside and all(y == pytest.approx(1 / 0.8) for y in inside)
    outside = [y for x, y in zip(curve["x"], curve["y"]) if x < -0.21 or x > 0.61]
    assert outside and all(y == 0 for y in outside)


@pytest.mark.parametrize("params", [
    {"distribution": "truncated_normal", "clip_sigma": 2.5},
    {"distribution": "truncated_normal", "clip_sigma": 1.0, "mode": "fan_out", "scale": 2.0},
    {"distribution": "normal", "mode": "fan_avg", "scale": 0.5},
    {"distribution": "uniform", "mode": "none", "scale": 0.01},
])
def test_custom_initializers_have_their_closed_form_too(params):
    """Truncations other than Keras's 2 sigma are drawn by inverse CDF on the worker; the theory
    must still match them (the closed form had no answer for them before)."""
    theory = theory_for("custom", params, KERNEL)
    assert theory is not None
    assert ks_from_quantiles(drawn_quantiles("custom", params=params), theory) < THRESHOLD


def test_a_constant_custom_initializer_is_a_point():
    theory = theory_for("custom", {"distribution": "constant", "mode": "fan_in", "scale": 2.0}, KERNEL)
    assert theory.point == pytest.approx(np.float32((2.0 / 784) ** 0.5))
    assert ks_from_quantiles(drawn_quantiles("custom", params={"distribution": "constant", "mode": "fan_in",
                                                               "scale": 2.0}), theory) == 0.0


CONV = (3, 3, 64, 64)


@pytest.mark.parametrize("init_id", ["orthogonal", "delta_orthogonal"])
def test_orthogonal_conv_kernels_match_their_theory(init_id):
    """Keras's Orthogonal flattens a conv kernel to (kh·kw·c_in) × c_out; delta-orthogonal puts
    an orthogonal c_in × c_out matrix at the centre tap and zeros at the other 8 taps."""
    theory = theory_for(init_id, {}, CONV)
    assert theory is not None
    drawn = draw(init_id, None, 5, CONV).astype(np.float32)
    ks = ks_from_quantiles(tensor_summary(drawn)["quantiles"], theory)
    assert ks < mismatch_threshold(drawn.size, 129), (init_id, theory.label, ks)
    assert theory.dist.ppf([0.0005, 0.5, 0.9995])[1] == 0.0
    # Drawn one way and read the other, the check says so.
    other = theory_for("orthogonal" if init_id == "delta_orthogonal" else "delta_orthogonal", {}, CONV)
    assert ks_from_quantiles(tensor_summary(drawn)["quantiles"], other) > mismatch_threshold(drawn.size, 129)


def test_delta_orthogonal_theory_is_a_point_mass_at_zero_plus_the_centre_taps():
    theory = theory_for("delta_orthogonal", {"gain": 2.0}, CONV)
    dist = theory.dist
    assert dist.share == pytest.approx(1 / 9)
    assert dist.cdf(0.0) - dist.cdf_left(0.0) == pytest.approx(8 / 9)
    assert dist.continuous.std() == pytest.approx(2.0 / 8.0)  # gain / sqrt(max(c_in, c_out))
    assert "8 of 9 taps" in theory.label
    low, high = dist.ppf([0.001, 0.999])
    assert dist.cdf(low) == pytest.approx(0.001, abs=1e-9) and dist.cdf(high) == pytest.approx(0.999, abs=1e-9)
