"""The group trainer on Keras's JAX backend (the test extras install jax for the CPU).

The training core is backend-neutral Keras 3, so a GPU machine with JAX but no TensorFlow
can run it. Each test trains in a subprocess with KERAS_BACKEND=jax, because a process
picks its Keras backend once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.require import require_module

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]

TRAIN = """
import json, sys
from app.domain.spec import run_setup
from worker.training.datasets import prepare_data
from worker.training.sink import MemorySink
from worker.training.trainer import train_group

runs = [run_setup(**item) for item in json.loads(sys.argv[1])]
dataset = runs[0].dataset
data = prepare_data(dataset.name, dataset.train_samples, dataset.validation_samples, sys.argv[2])
fused, alone = MemorySink(), MemorySink()
train_group(runs, fused, data=data)
for run in runs:
    train_group([run], alone, data=data)
gradient = lambda sink, run_id: [r["l2"] for r in sink.layers[run_id][2] if r["kind"] == "gradient"]
print(json.dumps({str(run.run_id): {"fused": fused.epochs[run.run_id], "alone": alone.epochs[run.run_id],
                                    "fused_gradients": gradient(fused, run.run_id),
                                    "alone_gradients": gradient(alone, run.run_id)} for run in runs}))
"""


@pytest.fixture(autouse=True)
def jax_installed():
    """The test extras install jax: missing, these tests skip, and fail under CI."""
    require_module("jax")


def train(backend: str, runs: list[dict], data_dir: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", TRAIN, json.dumps(runs), str(data_dir)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(run_id: int, seed: int, initializer: str, **overrides) -> dict:
    return {"run_id": run_id, "seed": seed, "dataset": "fashion_mnist", "train_samples": 300,
            "validation_samples": 200, "hidden_units": [32, 16], "epochs": 2, "batch_size": 32,
            "initializer": initializer, **overrides}


def assert_close(a: float, b: float, relative: float) -> None:
    assert abs(a - b) <= relative * max(abs(a), abs(b), 1e-12), (a, b)


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


def test_a_seed_free_run_trains_alike_on_jax_and_tensorflow(data_dir):
    require_module("tensorflow")
    # Seeded random draws differ between backends; constant weights do not, so the data
    # feed, batch order, loss and metrics are compared across backends here.
    group = [run(1, 0, "constant", initializer_params={"value": 0.01}),
             run(2, 1, "constant", initializer_params={"value": -0.02})]
    on_jax, on_tf = train("jax", group, data_dir), train("tensorflow", group, data_dir)
    assert sorted(on_jax) == sorted(on_tf) == ["1", "2"]
    for run_id in on_jax:
        assert [e["epoch"] for e in on_jax[run_id]["fused"]] == [e["epoch"] for e in on_tf[run_id]["fused"]] == [1, 2]
        for a, b in zip(on_jax[run_id]["fused"], on_tf[run_id]["fused"]):
            for name in ("loss", "val_loss"):
                assert_close(a[name], b[name], 1e-3)
            # Constant weights leave the ten logits nearly tied, so which class wins the argmax
            # can flip on a last-bit difference between backends: a few samples of 300 or 200.
            for name in ("accuracy", "val_accuracy"):
                assert abs(a[name] - b[name]) <= 0.03, (name, a[name], b[name])


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
        # conv_0, conv_1, conv_2, proj_1, dense_0, output
        assert len(item["fused_gradients"]) == len(item["alone_gradients"]) == 6
        for fused, alone in zip(item["fused_gradients"], item["alone_gradients"]):
            assert_close(fused, alone, 1e-4)
