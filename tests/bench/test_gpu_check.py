"""bench/gpu_check.py --quick on the CPU build of JAX, as a GPU machine would run it, minus the GPU.

A GPU machine has JAX with CUDA but may have no TensorFlow: the check runs here in a process
where importing TensorFlow fails (Keras only probes for it, to seed it), so a TensorFlow import
anywhere in the training core breaks this test rather than the GPU run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.require import require_module

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

# Prepended to a script: importing any of REFUSED fails, as on a machine without them.
REFUSE = """
import importlib, importlib.abc, runpy, sys

imported = []

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in REFUSED:
            imported.append(name)
            raise ImportError(f"{name} is not installed on a GPU machine")

sys.meta_path.insert(0, Refuse())
"""
GPU_CHECK = 'REFUSED = ("tensorflow", "celery", "sqlalchemy")' + REFUSE + """
sys.argv = ["bench/gpu_check.py", "--quick"]
try:
    runpy.run_path("bench/gpu_check.py", run_name="__main__")
except SystemExit as exc:
    assert not exc.code, exc.code
print("refused imports:", sorted(set(imported)))
"""
JAX_WORKER = 'REFUSED = ("tensorflow",)' + REFUSE + """
for name in ("worker.tasks", "worker.training.trainer", "worker.training.recorder", "worker.training.probe",
             "worker.training.signal", "worker.training.device"):
    importlib.import_module(name)
import keras
print(keras.backend.backend(), sorted(set(imported)))
"""


def test_quick_check_runs_on_cpu_jax_without_tensorflow(data_dir):
    require_module("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "INITLAB_DATA_DIR": str(data_dir),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", GPU_CHECK], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    # Keras asks for TensorFlow once, to seed it if present; nothing else may.
    assert lines[-1] in ("refused imports: []", "refused imports: ['tensorflow']"), lines[-1]
    assert re.fullmatch(r"device=CPU speedup_vs_seed_loop=\d+\.\d\d", lines[-2]), lines[-2]
    accuracies = {}
    for line in lines:
        match = re.fullmatch(r"\s+(\S+)\s+(0\.\d{4}|1\.0000) / (0\.\d{4}|1\.0000)", line)
        if match:
            accuracies[match[1]] = (float(match[2]), float(match[3]))
    assert sorted(accuracies) == ["glorot_uniform", "he_uniform", "random_normal(stddev=0.01)", "zeros"]
    # 16 steps of learning: the scaled schemes learn, zeros does not, both ways.
    for key in ("glorot_uniform", "he_uniform"):
        assert min(accuracies[key]) > 0.5, (key, accuracies[key])
    assert max(accuracies["zeros"]) < 0.3
    assert "(CPU)" in lines[0]  # the run's device record: "CPU" here, the accelerator's own name on a GPU
    assert "in groups of 4" in result.stdout  # auto on a CPU: all 4 runs of the quick study, below 16


def test_the_check_trains_seed_001s_study():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_check
        import workloads
    finally:
        sys.path.remove(str(ROOT / "bench"))
    body = gpu_check.study(2, [0, 1, 2, 3])
    expected = {key: value for key, value in workloads.SEED_001.items() if key != "name"}
    assert {key: value for key, value in body.items() if key != "name"} == expected


def test_a_jax_worker_imports_without_tensorflow():
    # The Celery worker itself, its tasks and the whole training core, as a GPU worker starts them.
    require_module("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", JAX_WORKER], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "jax []"
