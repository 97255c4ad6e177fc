"""The typed study spec: strict request types, what a study expands to, and one run's setup."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.domain.limits import StudyLimits, limit_problems
from app.domain.spec import InitializerRef, StudySpec, run_setup

BASE = {"initializers": ["he_normal", {"id": "random_normal", "params": {"stddev": 0.01}}], "seeds": [0, 1]}
NUMERIC_FIELDS = [
    ("dataset", "train_samples"), ("dataset", "validation_samples"), ("dataset", "subset_seed"),
    ("model", "dropout"), ("training", "learning_rate"), ("training", "batch_size"), ("training", "epochs"),
]


def errors(body: dict) -> list[dict]:
    with pytest.raises(ValidationError) as caught:
        StudySpec.model_validate(body)
    return caught.value.errors()


@pytest.mark.parametrize(("block", "field"), NUMERIC_FIELDS)
@pytest.mark.parametrize("wrong", [True, "3", "0.5"])
def test_a_boolean_or_a_string_is_no_number(block, field, wrong):
    found = errors({**BASE, block: {field: wrong}})
    assert [(tuple(e["loc"]), e["type"]) for e in found] == [((block, field), e["type"]) for e in found]
    assert found[0]["type"] in ("int_type", "float_type")


@pytest.mark.parametrize("body, loc", [
    ({**BASE, "seeds": [True]}, ("seeds", 0)),
    ({**BASE, "seeds": ["1"]}, ("seeds", 0)),
    ({**BASE, "depths": [2.0]}, ("depths", 0)),
    ({**BASE, "model": {"hidden_units": [64, "32"]}}, ("model", "hidden_units", 1)),
    ({**BASE, "training": {"stop_on_divergence": "yes"}}, ("training", "stop_on_divergence")),
    ({**BASE, "training": {"epochs": 3.0}}, ("training", "epochs")),
    ({**BASE, "name": 5}, ("name",)),
])
def test_every_numeric_and_boolean_field_is_strict(body, loc):
    assert [tuple(e["loc"]) for e in errors(body)] == [loc]


def test_integers_are_welcome_where_a_float_belongs():
    spec = StudySpec.model_validate({**BASE, "training": {"learning_rate": 1}, "model": {"dropout": 0}})
    assert spec.training.learning_rate == 1.0 and isinstance(spec.training.learning_rate, float)


def test_initializer_params_follow_the_registry_rules():
    found = errors({**BASE, "initializers": [{"id": "random_normal", "params": {"stddev": -1.0}}]})
    assert [tuple(e["loc"]) for e in found] == [("initializers", 0, "params", "stddev")]
    found = errors({**BASE, "bias_initializer": "orthogonal"})
    assert [tuple(e["loc"]) for e in found] == [("bias_initializer",)] and "2-D kernel" in found[0]["msg"]
    found = errors({**BASE, "initializers": ["he_magic"]})
    assert "unknown initializer 'he_magic'" in found[0]["msg"]


def test_subsets_cannot_exceed_the_data_set():
    found = errors({**BASE, "dataset": {"name": "mnist", "validation_samples": 1_000_000}})
    assert [tuple(e["loc"]) for e in found] == [("dataset", "validation_samples")] and "at most 10000" in found[0]["msg"]
    assert errors({**BASE, "dataset": {"subset_seed": 2**64}})[0]["loc"] == ("dataset", "subset_seed")


def test_every_number_accepted_is_one_the_worker_can_use():
    """Issue 11, §6: each of these was accepted and then failed on the worker (or was read back wrong)."""
    # subset_seed >= 2^64 was read back as a float; the seeds live in 32-bit columns.
    for seed in (2**64, 2**31):
        assert [tuple(e["loc"]) for e in errors({**BASE, "dataset": {"subset_seed": seed}})] == [("dataset", "subset_seed")]
    assert StudySpec.model_validate({**BASE, "dataset": {"subset_seed": 2**31 - 1}}).dataset.subset_seed == 2**31 - 1
    # 1e9 is a float, not a count; and no subset may exceed the data set.
    found = errors({**BASE, "dataset": {"validation_samples": 1e9}})
    assert [(tuple(e["loc"]), e["type"]) for e in found] == [(("dataset", "validation_samples"), "int_type")]
    for field, size in (("train_samples", 60000), ("validation_samples", 10000)):
        found = errors({**BASE, "dataset": {"name": "fashion_mnist", field: size + 1}})
        assert [tuple(e["loc"]) for e in found] == [("dataset", field)] and f"at most {size}" in found[0]["msg"]
    # A constant of 3.5e38 is inf in float32: refused, naming the parameter and the bound.
    found = errors({**BASE, "initializers": [{"id": "constant", "params": {"value": 3.5e38}}]})
    assert [tuple(e["loc"]) for e in found] == [("initializers", 0, "params", "value")]
    assert "at most 1e+06" in found[0]["msg"] and "float32" in found[0]["msg"]


@pytest.mark.parametrize("ref, param", [
    ({"id": "constant", "params": {"value": -1.5e6}}, "value"),
    ({"id": "random_normal", "params": {"mean": 2e6}}, "mean"),
    ({"id": "random_normal", "params": {"stddev": 1e7}}, "stddev"),
    ({"id": "truncated_normal", "params": {"stddev": 1e300}}, "stddev"),
    ({"id": "random_uniform", "params": {"minval": -3e38, "maxval": 3e38}}, "minval"),
    ({"id": "orthogonal", "params": {"gain": 1e39}}, "gain"),
    ({"id": "custom", "params": {"scale": 1e300, "distribution": "uniform"}}, "scale"),  # failed in training
])
def test_initializer_numbers_are_bounded_in_magnitude(ref, param):
    found = errors({**BASE, "initializers": [ref]})
    assert [tuple(e["loc"]) for e in found] == [("initializers", 0, "params", param)]
    found = errors({**BASE, "bias_initializer": ref}) if ref["id"] != "orthogonal" else found
    assert found[0]["loc"][-1] == param


def test_the_bounds_are_served_to_the_form_and_the_largest_values_are_accepted():
    from app.domain.param_rules import MAX_MAGNITUDE
    from app.domain.registry import catalog

    rules = {entry["id"]: entry["rules"] for entry in catalog()}
    assert rules["constant"]["value"] == {"type": "number", "minimum": -MAX_MAGNITUDE, "maximum": MAX_MAGNITUDE}
    assert rules["random_normal"]["stddev"]["maximum"] == MAX_MAGNITUDE
    spec = StudySpec.model_validate({**BASE, "initializers": [
        {"id": "constant", "params": {"value": MAX_MAGNITUDE}}, {"id": "custom", "params": {"scale": MAX_MAGNITUDE}},
        {"id": "random_uniform", "params": {"minval": -MAX_MAGNITUDE, "maxval": MAX_MAGNITUDE}}]})
    assert spec.initializers[0].params == {"value": 1e6}


def test_a_study_expands_cell_by_cell_initializer_by_initializer_seed_by_seed():
    spec = StudySpec.model_validate({**BASE, "activations": ["relu", "tanh"], "depths": [2, 5]})
    runs = spec.runs()
    assert len(runs) == 2 * 2 * 2 * 2
    assert [(r.activation, r.depth, r.initializer.key, r.seed) for r in runs[:5]] == [
        ("relu", 2, "he_normal", 0), ("relu", 2, "he_normal", 1), ("relu", 2, "random_normal(stddev=0.01)", 0),
        ("relu", 2, "random_normal(stddev=0.01)", 1), ("relu", 5, "he_normal", 0)]
    assert spec.grid() == [("relu", 2), ("relu", 5), ("tanh", 2), ("tanh", 5)]


def test_layer_shapes_parameters_and_which_initializer_draws_each_layer():
    spec = StudySpec.model_validate({**BASE, "dataset": {"name": "mnist"}, "model": {
        "hidden_units": [128, 64], "output_initializer": "glorot_uniform"}, "bias_initializer": "zeros"})
    assert spec.layer_shapes() == [("dense_0", 784, 128), ("dense_1", 128, 64), ("output", 64, 10)]
    assert spec.layer_shapes(depth=3) == [("dense_0", 784, 128), ("dense_1", 128, 128), ("dense_2", 128, 128),
                                          ("output", 128, 10)]
    # Weights and biases: the one parameter count (it was computed twice, with and without biases).
    assert spec.parameter_count() == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10 == 109_386
    he = spec.initializers[0]
    assert spec.scheme(he, "dense_1", "kernel") == he
    assert spec.scheme(he, "output", "kernel").id == "glorot_uniform"
    assert spec.scheme(he, "dense_0", "bias").id == "zeros"


def test_a_run_setup_carries_the_spec_and_what_groups_share():
    spec = StudySpec.model_validate({**BASE, "depths": [3]})
    one, two = (spec.setup(run_id, ref, 0, None, 3) for run_id, ref in enumerate(spec.initializers, start=1))
    assert one.hidden_units == (128, 128, 128) and one.epochs == spec.planned_epochs == 10
    assert one.kernel_of(0).id == "he_normal" and one.kernel_of(3).id == "he_normal"
    assert one.shared() == two.shared()
    other = spec.setup(3, spec.initializers[0], 0, None, 2)
    assert other.shared() != one.shared()


def test_run_setup_checks_flat_settings_through_the_spec():
    setup = run_setup(7, 3, initializer="random_normal", initializer_params={"stddev": 0.02}, dataset="mnist",
                      hidden_units=[32], epochs=2, output_initializer="zeros")
    assert (setup.run_id, setup.seed, setup.kernel.params, setup.output.id) == (7, 3, {"stddev": 0.02}, "zeros")
    with pytest.raises(ValidationError) as caught:
        run_setup(activation="swish2", dropout=1.5, optimizer="rmsprop", epochs=0, initializer="nope",
                  bias_initializer="orthogonal")
    text = str(caught.value)
    for fragment in ("swish2", "dropout", "rmsprop", "epochs", "nope", "2-D kernel"):
        assert fragment in text
    with pytest.raises(TypeError):
        run_setup(hidden=[3])


def test_initializer_refs_have_one_key_and_label():
    assert InitializerRef(id="custom", params={"clip_sigma": 2}).key == "custom(clip_sigma=2)"
    assert InitializerRef(id="custom", params={"clip_sigma": 2}).label == "custom: truncated normal, fan_in, scale 1, clip 2σ"
    assert InitializerRef(id="he_normal").recipe == ("VarianceScaling", {"scale": 2.0, "mode": "fan_in",
                                                                          "distribution": "truncated_normal"})


LIMITS = StudyLimits(max_hidden_layers=4, max_hidden_units=256, max_epochs=5, max_runs_per_study=8, max_seeds=3,
                     max_train_samples=1000, max_parameters=150_000)


def test_limits_name_the_field_to_change():
    spec = StudySpec.model_validate({**BASE, "model": {"hidden_units": [512] * 5}, "training": {"epochs": 9},
                                     "seeds": [0, 1, 2, 3], "dataset": {"train_samples": 2000}})
    fields = [field for field, _ in limit_problems(spec, LIMITS)]
    assert fields == ["model.hidden_units", "model.hidden_units", "training.epochs", "seeds", "dataset.train_samples"]
    spec = StudySpec.model_validate({**BASE, "seeds": [0, 1, 2], "depths": [1, 2], "training": {"epochs": 2}})
    assert limit_problems(spec, LIMITS) == [("initializers", "12 runs (initializers x seeds x activations x depths) "
                                                             "exceed the limit of 8 (INITLAB_MAX_RUNS_PER_STUDY)")]
    spec = StudySpec.model_validate({**BASE, "model": {"hidden_units": [256, 256]}, "training": {"epochs": 2}})
    ((field, message),) = limit_problems(spec, LIMITS)
    assert field == "model.hidden_units" and "269,322 parameters" in message
    assert limit_problems(StudySpec.model_validate(BASE), StudyLimits(*([10**9] * 7))) == []
