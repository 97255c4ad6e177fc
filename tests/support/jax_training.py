"""Training a group in a subprocess on a chosen Keras backend (a process picks its backend once, at import).

The training core is backend-neutral Keras 3, so a GPU machine with JAX but no TensorFlow can run it;
the tests of the JAX path (tests/worker/training/test_jax*.py, split over files so that the parallel
test run spreads them) train through ``train``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.require import require_module

@pytest.fixture(autouse=True)
def jax_installed():
    """The test extras install jax: missing, a test that imports this fixture skips, and fails under CI."""
    require_module("jax")


ROOT = Path(__file__).resolve().parents[2]

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
gradient = lambda sink, run_id, epoch=2: [r["l2"] for r in sink.layers[run_id][epoch] if r["kind"] == "gradient"]
print(json.dumps({str(run.run_id): {"fused": fused.epochs[run.run_id], "alone": alone.epochs[run.run_id],
                                    "fused_gradients": gradient(fused, run.run_id),
                                    "alone_gradients": gradient(alone, run.run_id),
                                    "fused_gradients_at_init": gradient(fused, run.run_id, 0),
                                    "alone_gradients_at_init": gradient(alone, run.run_id, 0)} for run in runs}))
"""


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
