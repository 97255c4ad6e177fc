"""On JAX (tests/support/jax_training.py): fused MLP runs, with and without dropout, equal their lone runs."""

from __future__ import annotations

import pytest

from support.jax_training import assert_close, jax_installed, run, train  # noqa: F401  (jax_installed: autouse)

pytestmark = pytest.mark.slow


def test_fused_runs_equal_separate_runs_on_jax(data_dir):
    runs = [run(1, 0, "glorot_uniform"), run(2, 1, "he_normal"), run(3, 2, "orthogonal")]
    with_dropout = [run(4, 3, "he_uniform", dropout=0.3), run(5, 4, "lecun_normal", dropout=0.3)]
    for group in (runs, with_dropout):
        results = train("jax", group, data_dir)
        assert sorted(results) == sorted(str(item["run_id"]) for item in group)
        for item in results.values():
            # Both epochs of both trainings, and a gradient norm for each of the 3 Dense layers.
            assert [e["epoch"] for e in item["fused"]] == [e["epoch"] for e in item["alone"]] == [1, 2]
            for fused, alone in zip(item["fused"], item["alone"]):
                for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
                    assert_close(fused[name], alone[name], 1e-4)
            assert len(item["fused_gradients"]) == len(item["alone_gradients"]) == 3
            for fused, alone in zip(item["fused_gradients"], item["alone_gradients"]):
                assert_close(fused, alone, 1e-4)
