"""Every registry entry draws what its formula says, repeatably, from its seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.domain.registry import REGISTRY, catalog, recipe_of, resolve_params
from support.draw import draw

SHAPE = (512, 512)
FAN_IN = FAN_OUT = 512
N = SHAPE[0] * SHAPE[1]
TRUNCATION_STD_FACTOR = 0.87962566103423978  # std of a standard normal truncated at ±2


def uniform(low, high):
    return ("uniform", low, high)


def normal(std):
    return ("normal", 0.0, std)


def truncated(std):
    """Keras truncates at ±2σ₀ with σ₀ = std / 0.8796, so the kept values have ``std``."""
    return ("truncated", 0.0, std)


def glorot_limit():
    return math.sqrt(6 / (FAN_IN + FAN_OUT))


# (init id, params) -> what the closed form says a 512×512 kernel must look like.
EXPECTED = {
    ("zeros", None): ("constant", 0.0),
    ("ones", None): ("constant", 1.0),
    ("constant", None): ("constant", 0.1),
    ("constant", (("value", -0.5),)): ("constant", -0.5),
    ("uniform_0_1", None): uniform(0.0, 1.0),
    ("random_uniform", None): uniform(-0.05, 0.05),
    ("random_uniform", (("minval", -0.2), ("maxval", 0.3))): uniform(-0.2, 0.3),
    ("random_normal", None): normal(0.05),
    ("random_normal", (("mean", 1.0), ("stddev", 0.2))): ("normal", 1.0, 0.2),
    ("truncated_normal", None): ("truncated_raw", 0.0, 0.05),
    ("uniform_fan_in", None): uniform(-1 / math.sqrt(FAN_IN), 1 / math.sqrt(FAN_IN)),
    ("normal_fan_in", None): normal(1 / math.sqrt(FAN_IN)),
    ("glorot_uniform", None): uniform(-glorot_limit(), glorot_limit()),
    ("glorot_normal", None): truncated(math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("he_uniform", None): uniform(-math.sqrt(6 / FAN_IN), math.sqrt(6 / FAN_IN)),
    ("he_normal", None): truncated(math.sqrt(2 / FAN_IN)),
    ("he_normal_untruncated", None): normal(math.sqrt(2 / FAN_IN)),
    ("lecun_uniform", None): uniform(-math.sqrt(3 / FAN_IN), math.sqrt(3 / FAN_IN)),
    ("lecun_normal", None): truncated(math.sqrt(1 / FAN_IN)),
    ("orthogonal", None): ("orthogonal", 1.0),
    ("orthogonal", (("gain", 2.0),)): ("orthogonal", 2.0),
    ("delta_orthogonal", None): ("orthogonal", 1.0),  # a Dense kernel: orthogonal itself
    ("keras_default", None): uniform(-glorot_limit(), glorot_limit()),
    ("lsuv", None): ("orthogonal", 1.0),  # the starting weights; the rescaling needs data (test_lsuv.py)
    ("custom", None): truncated(math.sqrt(1 / FAN_IN)),  # truncated_normal, fan_in, scale 1: LeCun normal
    ("custom", (("distribution", "normal"), ("mode", "fan_avg"), ("scale", 2.0))): normal(math.sqrt(2 / 512)),
    ("custom", (("distribution", "uniform"), ("mode", "fan_out"), ("scale", 3.0))):
        uniform(-math.sqrt(9 / FAN_OUT), math.sqrt(9 / FAN_OUT)),
    ("custom", (("distribution", "normal"), ("mode", "none"), ("scale", 1e-4))): normal(0.01),
    ("custom", (("distribution", "constant"), ("mode", "none"), ("scale", 0.25))): ("constant", 0.5),
}


def test_every_registry_entry_has_an_expectation():
    assert {init_id for init_id, _ in EXPECTED} == set(REGISTRY)


@pytest.mark.parametrize(
    "init_id, params", sorted(EXPECTED, key=str), ids=lambda value: str(value)
)
def test_sample_matches_closed_form(init_id, params):
    expected = EXPECTED[(init_id, params)]
    kernel = draw(init_id, dict(params) if params else None)
    kind = expected[0]
    if kind == "constant":
        assert np.all(kernel == np.float32(expected[1]))
        return
    if kind == "orthogonal":
        gain = expected[1]
        np.testing.assert_allclose(kernel.T @ kernel, gain**2 * np.eye(SHAPE[1]), atol=1e-4 * gain**2)
        return
    if kind == "uniform":
        low, high = expected[1], expected[2]
        mean, std = (low + high) / 2, (high - low) / math.sqrt(12)
        assert low <= kernel.min() < low + 0.001 * (high - low)
        assert high - 0.001 * (high - low) < kernel.max() <= high
    elif kind == "normal":
        mean, std = expected[1], expected[2]
    elif kind == "truncated":
        mean, std = expected[1], expected[2]
        bound = 2 * std / TRUNCATION_STD_FACTOR
        assert -bound <= kernel.min() and kernel.max() <= bound
        assert kernel.max() > 0.99 * bound
    else:  # truncated_raw: keras.initializers.TruncatedNormal keeps its stddev as σ₀
        mean, bound = expected[1], 2 * expected[2]
        std = expected[2] * TRUNCATION_STD_FACTOR
        assert -bound <= kernel.min() and kernel.max() <= bound
    assert kernel.std() == pytest.approx(std, rel=0.02)
    assert abs(kernel.mean() - mean) < 5 * std / math.sqrt(N) + 1e-7


# The registry's constants (default parameters): no randomness for a seed to vary.
CONSTANT = {init_id for (init_id, params), expected in EXPECTED.items() if params is None and expected[0] == "constant"}


def test_the_constants_are_the_three_named_ones():
    assert CONSTANT == {"zeros", "ones", "constant"}


@pytest.mark.parametrize("init_id", sorted(REGISTRY))
def test_same_seed_same_tensor_and_other_seed_other_tensor(init_id):
    first = draw(init_id, seed=7, shape=(64, 32))
    np.testing.assert_array_equal(first, draw(init_id, seed=7, shape=(64, 32)))
    other = draw(init_id, seed=8, shape=(64, 32))
    if init_id in CONSTANT:
        assert np.ptp(first) == 0 and np.array_equal(first, other)
    else:
        assert np.ptp(first) > 0 and not np.array_equal(first, other)


def test_unknown_id_raises_key_error():
    with pytest.raises(KeyError, match="no_such_init"):
        recipe_of("no_such_init", None)


@pytest.mark.parametrize(
    "init_id, params, message",
    [
        ("glorot_uniform", {"gain": 2.0}, "no parameter"),
        ("random_uniform", {"minval": 0.5, "maxval": 0.1}, "below maxval"),
        ("random_normal", {"stddev": -1.0}, "positive"),
        ("constant", {"value": float("nan")}, "finite"),
        ("constant", {"value": "big"}, "number"),
        ("orthogonal", {"gain": 0.0}, "positive"),
        ("custom", {"distribution": "cauchy"}, "one of normal, truncated_normal, uniform, constant"),
        ("custom", {"mode": "fan_max"}, "one of fan_in, fan_out, fan_avg, none"),
        ("custom", {"scale": -1.0}, "positive"),
        ("custom", {"scale": None}, "must be a number, got null"),
        ("custom", {"clip_sigma": 0.0}, "positive"),
        ("custom", {"clip_sigma": 7.0}, "at most 6"),
        ("custom", {"distribution": "uniform", "clip_sigma": 2.0}, "only when distribution is truncated_normal"),
        ("custom", {"distribution": 3}, "must be a string"),
        ("lsuv", {"gain": 2.0}, "no parameter"),
    ],
)
def test_bad_params_raise_value_error(init_id, params, message):
    with pytest.raises(ValueError, match=message):
        resolve_params(init_id, params)


def test_catalog_entries_are_complete():
    entries = catalog()
    assert [entry["id"] for entry in entries] == list(REGISTRY)
    for entry in entries:
        assert set(entry) >= {"id", "name", "formula", "params", "reference"}
        for key in ("id", "name", "formula", "reference"):
            assert isinstance(entry[key], str) and entry[key]
        assert set(entry["rules"]) == set(entry["params"])
        for name, default in entry["params"].items():
            rule = entry["rules"][name]
            kind = str if rule["type"] == "string" else float
            assert isinstance(default, kind) or (default is None and rule.get("nullable")), (entry["id"], name)
    assert "glorot_uniform" in REGISTRY["keras_default"].formula
    custom = next(entry for entry in entries if entry["id"] == "custom")
    assert custom["rules"]["distribution"]["enum"] == ["normal", "truncated_normal", "uniform", "constant"]
    assert custom["rules"]["clip_sigma"]["nullable"] is True
    assert [entry["id"] for entry in entries if entry["needs_data"]] == ["lsuv"]


def test_keras_default_matches_what_dense_uses_unnamed():
    import keras

    layer = keras.layers.Dense(4)
    assert type(layer.kernel_initializer).__name__ == "GlorotUniform"


@pytest.mark.parametrize("init_id, keras_class", [
    ("glorot_uniform", "GlorotUniform"), ("glorot_normal", "GlorotNormal"), ("he_uniform", "HeUniform"),
    ("he_normal", "HeNormal"), ("lecun_uniform", "LecunUniform"), ("lecun_normal", "LecunNormal"),
    ("keras_default", "GlorotUniform"),
])
def test_variance_scaling_recipes_are_kerass_named_initializers(init_id, keras_class):
    """The registry writes Glorot, He and LeCun as VarianceScaling(scale, mode, distribution), the
    three numbers Keras's own subclasses pick: the tensors must be Keras's, bit for bit."""
    import keras

    shape = (300, 70)
    named = keras.ops.convert_to_numpy(getattr(keras.initializers, keras_class)(seed=5)(shape, dtype="float32"))
    np.testing.assert_array_equal(draw(init_id, seed=5, shape=shape), named.astype(np.float64))


# ---- custom: a declarative spec, built on keras.initializers ----------------------------------


@pytest.mark.parametrize("clip", [0.5, 1.0, 1.5, 2.0, 3.0])
def test_custom_clipped_normal_stays_within_clip_and_keeps_the_requested_std(clip):
    from scipy.stats import kstest, truncnorm

    scale = 2.0
    sigma = math.sqrt(scale / FAN_IN)  # what fan_in and scale ask for
    sigma0 = sigma / truncnorm(-clip, clip).std()  # the underlying normal's std
    kernel = draw("custom", {"distribution": "truncated_normal", "mode": "fan_in", "scale": scale, "clip_sigma": clip})
    bound = clip * sigma0
    assert np.abs(kernel).max() <= bound * (1 + 1e-6)
    assert np.abs(kernel).max() > 0.99 * bound  # it does reach the clip, so the clip is where we say
    assert kernel.std() == pytest.approx(sigma, rel=0.02)
    # The shape, not only the spread: a truncated normal, not a clipped one (no mass piled at the bound).
    assert np.mean(np.abs(kernel) > 0.999 * bound) < 0.01
    sample = np.random.default_rng(0).choice(kernel.ravel(), 20000, replace=False)
    assert kstest(sample / sigma0, truncnorm(-clip, clip).cdf).pvalue > 1e-3


def test_seed_001_exercise_normal_clipped_at_two_sigma():
    # "a normal distribution but clips values that are more than 2 standard deviations from the mean"
    spec = {"distribution": "truncated_normal", "mode": "none", "scale": 0.05**2, "clip_sigma": 2.0}
    kernel = draw("custom", spec)
    sigma0 = 0.05 / TRUNCATION_STD_FACTOR
    assert np.abs(kernel).max() <= 2 * sigma0 * (1 + 1e-6)
    assert kernel.std() == pytest.approx(0.05, rel=0.02)


@pytest.mark.parametrize("spec, named", [
    ({"distribution": "truncated_normal", "mode": "fan_in", "scale": 2.0}, "he_normal"),
    ({"distribution": "truncated_normal", "mode": "fan_in", "scale": 2.0, "clip_sigma": 2.0}, "he_normal"),
    ({"distribution": "truncated_normal", "mode": "fan_avg", "scale": 1.0}, "glorot_normal"),
    ({"distribution": "normal", "mode": "fan_in", "scale": 2.0}, "he_normal_untruncated"),
    ({"distribution": "uniform", "mode": "fan_in", "scale": 1.0 / 3.0}, "uniform_fan_in"),
    ({"distribution": "uniform", "mode": "fan_avg", "scale": 1.0}, "glorot_uniform"),
])
def test_custom_spec_of_a_named_scheme_draws_its_very_tensor(spec, named):
    shape = (300, 70)
    np.testing.assert_array_equal(draw("custom", spec, seed=11, shape=shape), draw(named, seed=11, shape=shape))


def test_custom_param_errors_name_the_parameter():
    from app.domain.param_rules import ParamError

    for params, name in [({"distribution": "cauchy"}, "distribution"), ({"mode": "x"}, "mode"),
                         ({"scale": -1}, "scale"), ({"clip_sigma": -2}, "clip_sigma"),
                         ({"distribution": "normal", "clip_sigma": 2}, "clip_sigma")]:
        with pytest.raises(ParamError) as error:
            resolve_params("custom", params)
        assert error.value.param == name
    with pytest.raises(ParamError) as error:
        resolve_params("random_uniform", {"minval": 1.0, "maxval": 0.0})
    assert error.value.param is None  # the pair is wrong, not one value


def test_labels_are_readable_and_tell_specs_apart():
    from app.domain.registry import label

    clipped = {"distribution": "truncated_normal", "mode": "fan_in", "scale": 1.0, "clip_sigma": 2.0}
    assert label("custom", clipped) == "custom: truncated normal, fan_in, scale 1, clip 2σ"
    assert label("custom", {**clipped, "clip_sigma": 1.5}) == "custom: truncated normal, fan_in, scale 1, clip 1.5σ"
    uniform = {"distribution": "uniform", "mode": "none", "scale": 0.5}
    assert label("custom", uniform) == "custom: uniform, none, scale 0.5"
    assert label("random_normal", {"stddev": 0.01}) == "Random normal (stddev=0.01)"
    assert label("lsuv", {}) == "LSUV (layer-sequential unit variance)"


@pytest.mark.parametrize("c_in, c_out", [(16, 32), (32, 16), (64, 64)])
def test_delta_orthogonal_is_an_orthogonal_matrix_at_the_centre_tap_and_zero_elsewhere(c_in, c_out):
    from app.domain.spec import InitializerRef
    from worker.training.initializers import build

    kernel = np.asarray(build(InitializerRef(id="delta_orthogonal", params={"gain": 2.0}), 5)((3, 3, c_in, c_out)))
    assert kernel.shape == (3, 3, c_in, c_out)
    centre = kernel[1, 1].astype(np.float64)
    others = np.delete(kernel.reshape(9, c_in, c_out), 4, axis=0)
    assert np.count_nonzero(others) == 0
    # gain · Q with orthonormal columns (c_in ≥ c_out) or rows (c_in < c_out).
    gram = centre.T @ centre if c_in >= c_out else centre @ centre.T
    assert np.allclose(gram, 4.0 * np.eye(min(c_in, c_out)), atol=1e-4)
    # A Dense shape draws what orthogonal draws with the same seed.
    dense = build(InitializerRef(id="delta_orthogonal"), 5)((c_in, c_out))
    assert np.array_equal(np.asarray(dense), np.asarray(build(InitializerRef(id="orthogonal"), 5)((c_in, c_out))))
