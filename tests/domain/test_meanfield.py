"""The mean-field theory (app/domain/meanfield.py) against closed forms and independent quadrature.

Closed forms: Gaussian moments; erf's arcsine kernel (Williams 1997) and relu's arc-cosine
kernel (Cho & Saul 2009); the linear and relu networks' fixed points; SELU's fixed point
q* = 1 at σ_w² = 1 (Klambauer et al. 2017). Independent numerics: scipy.integrate.quad.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, optimize

from app.domain import meanfield as mf
from app.domain.activations import ACTIVATIONS


def quad_expectation(f, q: float = 1.0) -> float:
    """E[f(√q z)] by adaptive quadrature, split at 0 where the activations kink and at |u| = 1, 8."""
    def density(z):
        return float(f(math.sqrt(q) * z)) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    inner = sorted(p / math.sqrt(q) for p in (1.0, 8.0) if p / math.sqrt(q) < 40)
    edges = [-40.0, *(-p for p in reversed(inner)), 0.0, *inner, 40.0]
    pieces = zip(edges, edges[1:])
    return sum(integrate.quad(density, a, b, epsabs=1e-15, epsrel=1e-12, limit=200)[0] for a, b in pieces)


def erf_kernel(q: float, c: float) -> float:
    """E[erf(u1) erf(u2)], u1, u2 of variance q and correlation c (Williams 1997)."""
    return 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q))


def relu_kernel(q: float, c: float) -> float:
    """E[relu(u1) relu(u2)] (Cho & Saul 2009's arc-cosine kernel of degree 1)."""
    return q / (2 * math.pi) * (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c)


# ---------------------------------------------------------------- activations


def test_every_model_activation_has_a_theory_and_erf_is_extra():
    assert set(ACTIVATIONS) <= set(mf.SUPPORTED_ACTIVATIONS)
    assert "erf" in mf.SUPPORTED_ACTIVATIONS


def test_unknown_activation_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown activation 'gelu'.*relu.*tanh.*erf"):
        mf.activation_functions("gelu")
    with pytest.raises(ValueError):
        mf.mean_field("swish", 1.0, 0.0)


@pytest.mark.parametrize("name", mf.SUPPORTED_ACTIVATIONS)
def test_derivatives_match_finite_differences(name):
    phi, dphi = mf.activation_functions(name)
    x = np.array([-2.5, -0.7, -0.01, 0.01, 0.3, 1.9])
    h = 1e-6
    assert np.allclose((phi(x + h) - phi(x - h)) / (2 * h), dphi(x), atol=1e-7)


def test_keras_constants():
    phi_leaky, _ = mf.activation_functions("leaky_relu")
    assert phi_leaky(np.array([-1.0]))[0] == pytest.approx(-0.2)  # Keras 3's default negative_slope
    phi_selu, _ = mf.activation_functions("selu")
    assert phi_selu(np.array([-1.0]))[0] == pytest.approx(1.0507009873554805 * 1.6732632423543772 * (math.exp(-1) - 1))
    # SELU's constants are those that make N(0, 1) a fixed point: E[selu(z)] = 0, E[selu(z)²] = 1.
    assert mf.gaussian_expectation(phi_selu) == pytest.approx(0.0, abs=1e-7)
    assert mf.length_map("selu", 1.0, 0.0, 1.0) == pytest.approx(1.0, abs=1e-7)


# ---------------------------------------------------------------- quadrature


def test_gaussian_moments():
    assert mf.gaussian_expectation(np.ones_like) == pytest.approx(1.0, abs=1e-14)
    assert mf.gaussian_expectation(np.square) == pytest.approx(1.0, abs=1e-13)
    assert mf.gaussian_expectation(lambda z: z**4) == pytest.approx(3.0, abs=1e-12)
    assert mf.gaussian_expectation(np.square, q=7.0) == pytest.approx(7.0, rel=1e-13)


@pytest.mark.parametrize("q", [0.001, 0.05, 1.0, 5.0, 20.0, 1e4])
def test_expectations_match_adaptive_quadrature(q):
    """Large q too: φ(√q z) then changes on a scale of 1/√q in z, which a fixed rule misses."""
    for name in ("tanh", "elu", "selu"):
        phi, dphi = mf.activation_functions(name)
        for f in (lambda u: phi(u) ** 2, lambda u: dphi(u) ** 2):
            assert mf.gaussian_expectation(f, q) == pytest.approx(quad_expectation(f, q), rel=1e-8)


def test_erf_closed_form_is_right_and_matched():
    erf, _ = mf.activation_functions("erf")
    for a2 in (0.1, 1.0, 3.0):  # E[erf(a z)²] = (2/π) arcsin(2a²/(1 + 2a²))
        closed = 2 / math.pi * math.asin(2 * a2 / (1 + 2 * a2))
        assert quad_expectation(lambda u: erf(u) ** 2, a2) == pytest.approx(closed, rel=1e-11)
        assert mf.gaussian_expectation(lambda u: erf(u) ** 2, a2) == pytest.approx(closed, rel=1e-12)


@pytest.mark.parametrize("c", [-1.0, -0.6, 0.0, 0.3, 0.8, 0.99, 0.999999, 1.0])
def test_bivariate_expectation_matches_the_arcsine_and_arccosine_kernels(c):
    erf, _ = mf.activation_functions("erf")
    relu, _ = mf.activation_functions("relu")
    for q in (0.01, 0.5, 2.0, 10.0):
        erf_erf = mf.bivariate_expectation(lambda a, b: erf(a) * erf(b), q, c)
        assert erf_erf == pytest.approx(erf_kernel(q, c), abs=1e-10)
        relu_relu = mf.bivariate_expectation(lambda a, b: relu(a) * relu(b), q, c)
        assert relu_relu == pytest.approx(relu_kernel(q, c), rel=1e-8, abs=1e-15)


# ---------------------------------------------------------------- fixed points and phases


POINTS = [("tanh", 0.5, 0.05), ("tanh", 1.5, 0.05), ("tanh", 2.5, 0.05), ("tanh", 4.0, 0.3), ("relu", 1.5, 0.1),
          ("sigmoid", 150.0, 0.05), ("elu", 1.4, 0.05), ("selu", 1.0, 0.0), ("leaky_relu", 1.0, 0.2),
          ("erf", 2.0, 0.1), ("linear", 0.5, 0.1)]


@pytest.mark.parametrize("name, weight_variance, bias_variance", POINTS)
def test_fixed_points_are_fixed_and_the_phase_follows_chi_1(name, weight_variance, bias_variance):
    point = mf.mean_field(name, weight_variance, bias_variance)
    q = point.q_star
    assert 0 < q < math.inf
    assert mf.length_map(name, weight_variance, bias_variance, q) == pytest.approx(q, rel=1e-9, abs=1e-12)
    c_next = mf.correlation_map(name, weight_variance, bias_variance, point.c_star, q)
    assert c_next == pytest.approx(point.c_star, abs=1e-9)
    assert math.isfinite(point.xi_c) and math.isfinite(point.xi_q)
    if point.chi_1 < 1:
        assert point.c_star == 1.0 and point.chi_c == point.chi_1
    else:  # chaotic: a second, stable fixed point below 1
        assert point.chi_1 > 1 and point.c_star < 0.999 and point.chi_c < 1


def test_the_phases_of_tanh():
    assert mf.mean_field("tanh", 1.2, 0.05).chi_1 < 1  # ordered, below 1.76
    chaotic = mf.mean_field("tanh", 3.0, 0.05)
    assert chaotic.chi_1 > 1 and 0 < chaotic.c_star < 0.5
    assert mf.mean_field("tanh", 3.0, 0.0).c_star == pytest.approx(0.0, abs=1e-12)  # odd φ, no bias: c* = 0


def test_depth_scales_are_the_rates_at_which_the_maps_approach_their_fixed_points():
    for name, weight_variance, bias_variance in (("tanh", 1.5, 0.05), ("tanh", 2.5, 0.05), ("selu", 1.0, 0.0)):
        point = mf.mean_field(name, weight_variance, bias_variance)
        q, c, h = point.q_star, point.c_star, 1e-5
        slope_q = (mf.length_map(name, weight_variance, bias_variance, q + h * q)
                   - mf.length_map(name, weight_variance, bias_variance, q - h * q)) / (2 * h * q)
        assert math.exp(-1 / point.xi_q) == pytest.approx(slope_q, rel=1e-7)
        if c < 1:
            slope_c = (mf.correlation_map(name, weight_variance, bias_variance, c + h, q)
                       - mf.correlation_map(name, weight_variance, bias_variance, c - h, q)) / (2 * h)
            assert math.exp(-1 / point.xi_c) == pytest.approx(slope_c, rel=1e-6)


def test_length_map_slope_is_chi_1_plus_the_phi_second_derivative_term():
    """S17's ξ_q uses χ₁ + σ_w² E[φ''φ]; the module uses the equivalent score form."""
    weight_variance, bias_variance = 2.0, 0.05
    q = mf.mean_field("tanh", weight_variance, bias_variance).q_star
    chi_1 = weight_variance * quad_expectation(lambda u: (1 - math.tanh(u) ** 2) ** 2, q)
    second = weight_variance * quad_expectation(lambda u: -2 * math.tanh(u) ** 2 * (1 - math.tanh(u) ** 2), q)
    assert mf.length_map_slope("tanh", weight_variance, q) == pytest.approx(chi_1 + second, rel=1e-10)


def test_erf_fixed_point_against_its_closed_form_length_map():
    weight_variance, bias_variance = 2.0, 0.1
    q = optimize.brentq(lambda q: weight_variance * erf_kernel(q, 1.0) + bias_variance - q, 1e-6, 10, xtol=1e-15)
    assert mf.fixed_point_length("erf", weight_variance, bias_variance) == pytest.approx(q, rel=1e-11)


# ---------------------------------------------------------------- critical points


def test_relu_family_critical_points():
    assert mf.critical_weight_variance("relu", 0.0) == pytest.approx(2.0, abs=1e-6)  # He et al.
    assert mf.critical_weight_variance("leaky_relu", 0.0) == pytest.approx(2 / (1 + 0.2**2), abs=1e-9)
    assert mf.critical_weight_variance("linear", 0.0) == pytest.approx(1.0, abs=1e-12)
    for name in ("relu", "leaky_relu", "linear"):  # χ₁ = 1 only where q* diverges
        assert mf.critical_weight_variance(name, 0.05) is None


def test_tanh_critical_point_grows_with_the_bias_variance():
    assert mf.critical_weight_variance("tanh", 0.0) == pytest.approx(1.0, abs=1e-12)  # tanh'(0) = 1
    assert mf.critical_weight_variance("erf", 0.0) == pytest.approx(math.pi / 4, abs=1e-12)  # erf'(0)² = 4/π
    critical = [mf.critical_weight_variance("tanh", b) for b in (0.0, 0.01, 0.05, 0.2, 0.5, 1.0)]
    assert all(a < b for a, b in zip(critical, critical[1:]))


def test_tanh_at_the_critical_point_is_at_the_edge_of_chaos():
    critical = mf.critical_weight_variance("tanh", 0.05)
    point = mf.mean_field("tanh", critical, 0.05)
    assert point.chi_1 == pytest.approx(1.0, abs=1e-8)
    assert point.c_star == 1.0 and point.xi_c > 1e6


def test_tanh_critical_point_against_an_independent_solve():
    """Solve χ₁(σ_w²) = 1 for tanh at σ_b² = 0.05 with scipy's adaptive quadrature instead."""
    def chi_1(weight_variance):
        def gap(q):
            return weight_variance * quad_expectation(lambda u: math.tanh(u) ** 2, q) + 0.05 - q
        q = optimize.brentq(gap, 0.05, 10.0, xtol=1e-13)
        return weight_variance * quad_expectation(lambda u: (1 - math.tanh(u) ** 2) ** 2, q)
    independent = optimize.brentq(lambda w: chi_1(w) - 1, 1.5, 2.0, xtol=1e-10)
    assert mf.critical_weight_variance("tanh", 0.05) == pytest.approx(independent, abs=1e-7)


def test_xi_c_is_finite_off_the_critical_point_and_diverges_towards_it():
    critical = mf.critical_weight_variance("tanh", 0.05)
    for side in (-1, 1):
        scales = [mf.mean_field("tanh", critical * (1 + side * d), 0.05).xi_c for d in (0.3, 0.1, 0.01, 0.001)]
        assert all(math.isfinite(s) for s in scales)
        assert all(a < b for a, b in zip(scales, scales[1:]))
        assert scales[-1] > 100 * scales[0]


def test_elu_and_selu_at_a_large_bias_cross_just_before_their_length_diverges():
    for name, diverges_at in (("elu", 2.0), ("selu", 2 / 1.0507009873554805**2)):
        critical = mf.critical_weight_variance(name, 100.0)
        assert 0.95 * diverges_at < critical < diverges_at
        point = mf.mean_field(name, critical, 100.0)
        assert point.q_star < math.inf and point.chi_1 == pytest.approx(1.0, abs=1e-8)


def test_critical_points_of_the_other_activations_are_edges_of_chaos():
    for name, bias_variance in (("elu", 0.05), ("selu", 0.05), ("sigmoid", 0.05)):
        critical = mf.critical_weight_variance(name, bias_variance)
        assert critical is not None
        assert mf.mean_field(name, critical, bias_variance).chi_1 == pytest.approx(1.0, abs=1e-8)
        assert mf.mean_field(name, critical * 0.9, bias_variance).chi_1 < 1


# ---------------------------------------------------------------- closed-form networks


@pytest.mark.parametrize("weight_variance", [0.2, 0.5, 0.9])
def test_linear_network_closed_forms(weight_variance):
    bias_variance = 0.3
    point = mf.mean_field("linear", weight_variance, bias_variance)
    assert point.q_star == pytest.approx(bias_variance / (1 - weight_variance), rel=1e-12)
    assert point.chi_1 == pytest.approx(weight_variance, rel=1e-13)
    assert point.c_star == 1.0
    assert point.xi_c == pytest.approx(-1 / math.log(weight_variance), rel=1e-12)
    assert point.xi_q == pytest.approx(-1 / math.log(weight_variance), rel=1e-10)
    q, c = 2.0, 0.4
    expected = (weight_variance * q * c + bias_variance) / (weight_variance * q + bias_variance)
    assert mf.correlation_map("linear", weight_variance, bias_variance, c, q) == pytest.approx(expected, rel=1e-12)


def test_divergent_lengths_have_no_fixed_point():
    for name, weight_variance, bias_variance in (("linear", 1.0, 0.1), ("linear", 1.5, 0.0), ("relu", 3.0, 0.0),
                                                 ("relu", 2.0, 0.1)):
        point = mf.mean_field(name, weight_variance, bias_variance)
        assert point.q_star == math.inf
        assert point.c_star is point.chi_c is point.xi_q is point.xi_c is None
    assert mf.mean_field("relu", 3.0, 0.0).chi_1 == pytest.approx(1.5, rel=1e-13)
    assert mf.trainable_depth("relu", 3.0, 0.0) is None


def test_relu_closed_forms_and_the_marginal_he_point():
    point = mf.mean_field("relu", 1.5, 0.1)
    assert point.q_star == pytest.approx(0.1 / (1 - 1.5 / 2), rel=1e-12)
    assert point.chi_1 == pytest.approx(0.75, rel=1e-13)
    he = mf.mean_field("relu", 2.0, 0.0, q0=3.0)
    assert he.q_star == 3.0 and he.c_star == 1.0 and he.xi_c == math.inf and he.xi_q == math.inf
    dying = mf.mean_field("tanh", 0.5, 0.0)  # σ_b² = 0, ordered: the signal dies, the σ_b² → 0+ limit
    assert dying.q_star == 0.0 and dying.chi_1 == pytest.approx(0.5) and dying.c_star == 1.0
    assert dying.xi_c == pytest.approx(-1 / math.log(0.5))


# ---------------------------------------------------------------- trajectories, table, depth


def test_correlation_trajectory_follows_the_maps_to_the_fixed_point():
    point = mf.mean_field("tanh", 2.5, 0.05)
    path = mf.correlation_trajectory("tanh", 2.5, 0.05, c0=0.9, q0=0.2, depth=150)
    assert path["layer"] == list(range(151)) and path["q"][0] == 0.2 and path["c"][0] == 0.9
    assert path["q"][1] == pytest.approx(mf.length_map("tanh", 2.5, 0.05, 0.2))
    assert path["c"][1] == pytest.approx(mf.correlation_map("tanh", 2.5, 0.05, 0.9, 0.2))
    assert path["q"][-1] == pytest.approx(point.q_star, rel=1e-12)
    assert path["c"][-1] == pytest.approx(point.c_star, abs=1e-4)
    # late in the approach, the distance to c* shrinks by χ_c = exp(-1/ξ_c) per layer
    distance = [c - point.c_star for c in path["c"][100:103]]
    assert distance[2] / distance[1] == pytest.approx(math.exp(-1 / point.xi_c), rel=1e-3)
    ordered = mf.correlation_trajectory("relu", 1.5, 0.1, c0=0.2, q0=1.0, depth=100)["c"]
    assert all(a <= b + 1e-12 for a, b in zip(ordered, ordered[1:])) and ordered[-1] > 0.99


def test_trajectory_of_an_exploding_network_ends_in_inf():
    path = mf.correlation_trajectory("relu", 1000.0, 0.0, c0=0.5, q0=1.0, depth=150)
    assert path["q"][-1] == math.inf and path["c"][-1] is None  # 500^l overflows near l = 114
    assert path["q"][50] == pytest.approx(500.0**50, rel=1e-12) and 0.5 < path["c"][50] <= 1
    with pytest.raises(ValueError):
        mf.correlation_trajectory("relu", 1.0, 0.0, c0=1.5, q0=1.0, depth=3)
    with pytest.raises(ValueError):
        mf.correlation_trajectory("relu", -1.0, 0.0, c0=0.5, q0=1.0, depth=3)


def test_mean_field_table_is_json_ready_and_agrees_with_the_points():
    table = mf.mean_field_table("tanh", 0.05, [0.5, 1.0, 2.0, 3.0])
    assert table["activation"] == "tanh" and table["bias_variance"] == 0.05
    assert table["critical_weight_variance"] == pytest.approx(mf.critical_weight_variance("tanh", 0.05))
    assert [row["weight_variance"] for row in table["points"]] == [0.5, 1.0, 2.0, 3.0]
    assert table["points"][3]["c_star"] == pytest.approx(mf.mean_field("tanh", 3.0, 0.05).c_star)
    assert set(table["points"][0]) == {"weight_variance", "q_star", "c_star", "chi_1", "chi_c", "xi_q", "xi_c"}
    json.dumps(table, allow_nan=False)  # all finite here: plain floats
    relu = mf.mean_field_table("relu", 0.05)  # default grid, up to 4
    assert relu["critical_weight_variance"] is None and len(relu["points"]) == 40
    assert relu["points"][-1]["q_star"] == math.inf and relu["points"][-1]["xi_c"] is None
    assert all(type(v) in (float, type(None)) for row in relu["points"] for v in row.values())


def test_trainable_depth_is_six_correlation_depth_scales():
    xi_c = mf.mean_field("tanh", 1.2, 0.05).xi_c
    assert mf.trainable_depth("tanh", 1.2, 0.05) == pytest.approx(6 * xi_c)
    assert mf.trainable_depth("tanh", 1.2, 0.05, c=3.0) == pytest.approx(3 * xi_c)
    assert mf.trainable_depth("relu", 2.0, 0.0) == math.inf
