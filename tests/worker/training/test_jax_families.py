"""On JAX (tests/support/jax_training.py), the GPU path of the model families: a fused BatchNorm CNN with a residual block."""

from __future__ import annotations

import pytest

from support.jax_training import assert_close, jax_installed, run, train  # noqa: F401  (jax_installed: autouse)

pytestmark = pytest.mark.slow


def test_a_fused_cnn_with_batchnorm_and_a_residual_block_equals_its_lone_runs_on_jax(data_dir):
    # The GPU path: per-run convolutions, BatchNorm's moving statistics (assigned inside the
    # compiled step, which JAX runs statelessly), pooling and the skip projection.
    model = {"family": "cnn", "conv_channels": [4, 8, 8], "hidden_units": [16], "normalization": "batchnorm",
             "residual": True, "learning_rate": 0.01}
    group = [run(1, 0, "he_normal", **model), run(2, 1, "glorot_uniform", **model)]
    results = train("jax", group, data_dir)
    assert sorted(results) == ["1", "2"]
    for item in results.values():
        assert [e["epoch"] for e in item["fused"]] == [e["epoch"] for e in item["alone"]] == [1, 2]
        for fused, alone in zip(item["fused"], item["alone"]):
            for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
                assert_close(fused[name], alone[name], 1e-4)
        # conv_0, conv_1, conv_2, proj_1, dense_0, output. On the same weights (at init) the probe's
        # gradients agree to rounding; after two epochs the weights are ~1e-6 apart (XLA orders a fused
        # step's sums its own way), and a gradient through BatchNorm's batch statistics (the probe
        # normalizes on its batch, as a training step does) grows that to 1.9e-4 in one layer (measured).
        assert len(item["fused_gradients"]) == len(item["alone_gradients"]) == 6
        for fused, alone in zip(item["fused_gradients_at_init"], item["alone_gradients_at_init"]):
            assert_close(fused, alone, 1e-6)
        for fused, alone in zip(item["fused_gradients"], item["alone_gradients"]):
            assert_close(fused, alone, 1e-3)
