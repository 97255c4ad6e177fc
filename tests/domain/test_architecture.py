"""Model families in the spec: CNNs, normalization and residual blocks, as shapes, counts and 422s.

Every figure here is counted by hand from the layer shapes (Keras's Conv2D: a (kh, kw, c_in, c_out)
kernel and c_out biases; BatchNorm and LayerNorm: a scale and an offset per channel).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.domain.layers import fans
from app.domain.limits import StudyLimits, limit_problems
from app.domain.memory import run_memory, statistics_memory
from app.domain.probe import SignalProbeSpec
from app.domain.spec import StudySpec

BASE = {"initializers": ["he_normal"], "seeds": [0]}
CNN = {"family": "cnn", "conv_channels": [16, 32], "hidden_units": [64]}


def spec(**model) -> StudySpec:
    return StudySpec.model_validate({**BASE, "model": model})


def refused(model: dict, **study) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        StudySpec.model_validate({**BASE, **study, "model": model})
    (error,) = caught.value.errors()
    return ".".join(str(part) for part in error["loc"]), error["msg"]


def test_the_default_mlp_is_what_it_always_was():
    mlp = spec()
    assert mlp.layer_shapes() == [("dense_0", 784, 128), ("dense_1", 128, 64), ("output", 64, 10)]
    assert mlp.parameter_count() == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    setup = mlp.setup(1, mlp.initializers[0], 0)
    assert (setup.family, setup.conv_channels, setup.normalization, setup.residual) == ("mlp", (), "none", False)
    assert setup.depth == 2 and setup.kernel_of(2).id == "he_normal"


def test_a_cnn_has_conv_kernels_with_keras_fans_then_its_dense_head():
    cnn = spec(**CNN)
    assert cnn.model.kernel_size == 3 and cnn.model.pooling == "max"
    assert cnn.kernel_shapes() == [("conv_0", (3, 3, 1, 16)), ("conv_1", (3, 3, 16, 32)),
                                   ("dense_0", (7 * 7 * 32, 64)), ("output", (64, 10))]
    assert fans((3, 3, 16, 32)) == (3 * 3 * 16, 3 * 3 * 32)
    assert cnn.layer_shapes()[1] == ("conv_1", 144, 32)
    assert cnn.parameter_count() == (9 * 16 + 16) + (9 * 16 * 32 + 32) + (1568 * 64 + 64) + (64 * 10 + 10) == 105_866
    # No pooling keeps 28×28: the head sees 28·28·32 features.
    assert spec(**CNN, pooling="none").kernel_shapes()[2] == ("dense_0", (28 * 28 * 32, 64))
    # An empty head: the output layer reads the pooled image directly.
    assert spec(family="cnn", conv_channels=[8], hidden_units=[]).kernel_shapes()[-1] == ("output", (14 * 14 * 8, 10))


def test_normalization_layers_are_named_by_their_hidden_layer_and_counted():
    cnn = spec(**CNN, normalization="batchnorm")
    assert [hidden.norm for hidden in cnn.architecture().hidden] == ["bn_0", "bn_1", "bn_2"]
    # Each normalized layer gains a scale and an offset per channel; before a BatchNorm it has no bias.
    assert cnn.parameter_count() == 105_866 - (16 + 32 + 64) + 2 * (16 + 32 + 64)
    assert [layer.bias for layer in cnn.architecture().weighted()] == [False, False, False, True]
    mlp = spec(hidden_units=[32, 16], normalization="layernorm")
    assert [hidden.norm for hidden in mlp.architecture().hidden] == ["ln_0", "ln_1"]
    assert mlp.parameter_count() == spec(hidden_units=[32, 16]).parameter_count() + 2 * (32 + 16)


def test_residual_blocks_project_only_where_shapes_differ():
    mlp = spec(hidden_units=[32, 32, 32, 16, 16], residual=True)
    blocks = mlp.architecture().blocks
    assert [[h.layer.name for h in block.layers] for block in blocks] == [["dense_0"], ["dense_1", "dense_2"],
                                                                         ["dense_3", "dense_4"]]
    assert [block.projection for block in blocks[:2]] == [None, None]
    assert blocks[2].projection.name == "proj_3" and blocks[2].projection.kernel_shape == (32, 16)
    assert mlp.parameter_count() == (784 * 32 + 32) + 2 * (32 * 32 + 32) + (32 * 16 + 16) + (16 * 16 + 16) \
        + (32 * 16 + 16) + (16 * 10 + 10)
    cnn = spec(family="cnn", conv_channels=[8, 16, 16], hidden_units=[], residual=True)
    assert dict(cnn.kernel_shapes())["proj_1"] == (1, 1, 8, 16)
    # A grid depth counts hidden blocks: 3 blocks of a residual MLP are 1 + 2 + 2 layers.
    grid = StudySpec.model_validate({**BASE, "depths": [3], "model": {"hidden_units": [8, 8, 8], "residual": True}})
    assert len(grid.setup(1, grid.initializers[0], 0, depth=3).hidden_units) == 5


@pytest.mark.parametrize("model, field, words", [
    ({"conv_channels": [8]}, "model.conv_channels", "only with family cnn"),
    ({"pooling": "avg"}, "model.pooling", "only with family cnn"),
    ({"family": "cnn"}, "model.conv_channels", "at least one convolution"),
    ({"family": "cnn", "conv_channels": [8], "kernel_size": 4}, "model.kernel_size", "odd"),
    ({"family": "cnn", "conv_channels": [4] * 5}, "model.conv_channels", "at most 4 blocks with pooling"),
    ({"hidden_units": [8, 8], "residual": True}, "model.hidden_units", "odd number of layers"),
    ({"hidden_units": []}, "model.hidden_units", "at least one hidden layer"),
    ({"normalization": "groupnorm"}, "model.normalization", "'none', 'batchnorm' or 'layernorm'"),
])
def test_bad_combinations_name_the_field_and_the_rule(model, field, words):
    where, message = refused(model)
    assert where == field and words in message


def test_grid_depths_are_checked_against_the_family_and_lsuv_takes_every_family():
    where, message = refused({"family": "cnn", "conv_channels": [8]}, depths=[2, 5])
    assert where == "depths" and "at most 4" in message
    assert spec(family="cnn", conv_channels=[4] * 5, pooling="none").parameter_count() > 0
    for model in ({"normalization": "batchnorm"}, {"family": "cnn", "conv_channels": [8]}, {"hidden_units": [8, 8, 8], "residual": True}):
        StudySpec.model_validate({"model": model, "initializers": ["lsuv"]})


def test_a_depths_grid_replaces_the_base_stack_so_its_counts_are_not_checked():
    """The grid's depths set the stack; the base list only gives the width (QA: [64, 64] with residual was refused)."""
    grid = StudySpec.model_validate({"model": {"hidden_units": [64, 64], "residual": True},
                                     "initializers": ["he_normal"], "depths": [2, 3]})
    assert [len(grid.hidden_units_for(depth)) for depth in (2, 3)] == [3, 5]
    cnn = StudySpec.model_validate({"model": {"family": "cnn", "conv_channels": [4] * 5}, "initializers": ["he_normal"],
                                    "depths": [1, 2]})
    assert cnn.conv_channels_for(2) == [4, 4]
    where, message = refused({"hidden_units": [64, 64], "residual": True}, depths=[1, 2])
    assert where == "depths" and "at least 2" in message


def test_limits_cover_conv_layers_channels_and_parameters():
    limits = StudyLimits(max_hidden_layers=4, max_hidden_units=256, max_epochs=10, max_runs_per_study=8, max_seeds=3,
                         max_train_samples=1000, max_parameters=150_000, max_conv_layers=2, max_conv_channels=32)
    assert limit_problems(spec(**CNN), limits) == []
    wide = spec(family="cnn", conv_channels=[64, 8, 8], pooling="none", hidden_units=[])
    assert [field for field, _ in limit_problems(wide, limits)] == ["model.conv_channels", "model.conv_channels"]
    big = spec(family="cnn", conv_channels=[32], pooling="none", hidden_units=[])
    ((field, message),) = limit_problems(big, limits)
    assert field == "model.conv_channels" and "251,210 parameters" in message  # 28·28·32·10 + 10 + 9·32 + 32


def test_the_layer_limit_counts_the_layers_a_residual_depth_builds():
    limits = StudyLimits(max_hidden_layers=5, max_hidden_units=256, max_epochs=10, max_runs_per_study=8, max_seeds=3,
                         max_train_samples=1000, max_parameters=10**6)
    plain = StudySpec.model_validate({"model": {"hidden_units": [8]}, "initializers": ["he_normal"], "depths": [5]})
    assert limit_problems(plain, limits) == []
    residual = StudySpec.model_validate({"model": {"hidden_units": [8, 8, 8], "residual": True},
                                         "initializers": ["he_normal"], "depths": [3, 4]})
    ((field, message),) = limit_problems(residual, limits)  # depth 4 builds 7 layers, depth 3 five
    assert field == "depths" and "at most 5 hidden layers" in message and "depth 4 builds 7" in message


def test_memory_counts_conv_outputs_and_kernels():
    cnn = spec(**CNN)
    plain = spec(hidden_units=[64])
    # Per sample: each conv output and its pooled copy, then the head's 64 units.
    assert cnn.architecture().activation_values() == 28 * 28 * 16 + 14 * 14 * 16 + 14 * 14 * 32 + 7 * 7 * 32 + 64
    assert run_memory(cnn).activations > run_memory(plain).activations
    assert statistics_memory(cnn) == 1568 * 64 * 16  # the largest kernel: the head's


def test_the_signal_probe_takes_every_family_and_keeps_its_keys():
    # The key a plain question had before model families existed (computed at commit 77593db).
    plain = SignalProbeSpec.model_validate({"initializers": ["he_normal"]})
    assert plain.key() == "fc4a6f5a394173ae03ba6d1d9f573112d7a9223fc115b29680e87acaecde7bb6"
    keys = {SignalProbeSpec.model_validate({"initializers": ["he_normal"], "model": model}).key() for model in (
        {"normalization": "batchnorm"}, {"normalization": "layernorm"}, {"hidden_units": [64] * 3, "residual": True},
        {"hidden_units": [64] * 3, "residual": True, "zero_init_residual": True},
        {"family": "cnn", "conv_channels": [16, 32], "pooling": "max"},
        {"family": "cnn", "conv_channels": [16, 32], "pooling": "avg"})}
    assert len(keys) == 6 and plain.key() not in keys  # another network, another answer
    cnn = SignalProbeSpec.model_validate({"initializers": ["he_normal"], "model": {
        "family": "cnn", "conv_channels": [16, 32], "pooling": "max", "hidden_units": [64]}})
    assert [hidden.layer.name for hidden in cnn.study().architecture().hidden] == ["conv_0", "conv_1", "dense_0"]


def test_zero_init_residual_zeroes_each_blocks_last_kernel_or_scale_and_needs_residual():
    assert refused({"hidden_units": [32, 32, 32], "zero_init_residual": True}) == (
        "model.zero_init_residual", "Value error, applies only with residual: true")
    plain = spec(hidden_units=[32, 32, 32, 32, 32], residual=True, zero_init_residual=True)
    setup = plain.setup(1, plain.initializers[0], 0)
    drawn = {layer.name: setup.kernel_for(layer).id for layer in setup.architecture().weighted()}
    # dense_0 plain, then blocks (dense_1, dense_2) and (dense_3, dense_4): their last kernels start at zero.
    assert drawn == {"dense_0": "he_normal", "dense_1": "he_normal", "dense_2": "zeros", "dense_3": "he_normal",
                     "dense_4": "zeros", "output": "he_normal"}
    # The theory overlay expects what was drawn, at any depth of a grid.
    assert plain.scheme(plain.initializers[0], "dense_2", "kernel").id == "zeros"
    assert plain.scheme(plain.initializers[0], "dense_1", "kernel").id == "he_normal"
    deep = StudySpec.model_validate({**BASE, "depths": [2, 3], "model": {"hidden_units": [8, 8, 8], "residual": True,
                                                                          "zero_init_residual": True}})
    assert deep.scheme(deep.initializers[0], "dense_4", "kernel", depth=3).id == "zeros"
    # With normalization the kernels are the run's own: the block's last scale starts at 0 instead.
    normalized = spec(**CNN | {"conv_channels": [8, 8, 8]}, residual=True, zero_init_residual=True,
                      normalization="batchnorm")
    setup = normalized.setup(1, normalized.initializers[0], 0)
    assert {setup.kernel_for(layer).id for layer in setup.architecture().weighted()} == {"he_normal"}
    assert [end.norm for end in setup.architecture().residual_ends()] == ["bn_2"]
