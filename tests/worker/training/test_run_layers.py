"""worker/training/run_layers.py's per-run layers, one gradient at a time, under both of
TensorFlow's CPU kernel sets.

With TF_ENABLE_ONEDNN_OPTS=1 TensorFlow fuses a Conv2D directly followed by its bias add, and
that fused op gave every run slice but the first a wrong bias gradient (relative error ~1, not
rounding: the runs' fused CNNs then trained differently from the same runs alone). StackedConv
adds its bias to the output seen as (positions, channels), which the fusion does not match; and
RunNormalization scales and offsets run by run, and StackedDense sums each run's bias gradient
over that run's slice alone (layers.add_run_bias), so that each parameter's gradient sums one
run's slice in the same order whatever the group's size. Each check runs in a fresh process,
since TensorFlow reads the variable once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = """
import json
import numpy as np
import tensorflow as tf
import keras
from worker.training.layers import StackedDense
from worker.training.run_layers import RunNormalization, RunReshape, StackedConv

rng = np.random.default_rng(0)
runs, batch = 3, 16
x = tf.constant(rng.random((runs, batch, 14, 14, 4), dtype=np.float32))
kernels = [keras.initializers.HeNormal(seed=k) for k in range(runs)]
biases = [keras.initializers.RandomNormal(stddev=0.1, seed=10 + k) for k in range(runs)]

def gradients(layers, inputs):
    with tf.GradientTape() as tape:
        y = inputs
        for layer in layers:
            y = layer(y, training=True)
        loss = tf.reduce_sum(tf.sin(y) * tf.cast(tf.range(y.shape[-1]), y.dtype))
    variables = [v for layer in layers for v in layer.trainable_variables]
    return tape.gradient(loss, variables)

def layer_sets(k, n):  # the layers under test for runs k .. k+n-1: conv + normalization, a small Dense head
    for kind in ("layernorm", "batchnorm"):
        yield kind, [StackedConv(4, 3, "linear", kernels[k:k + n], biases[k:k + n]), RunNormalization(kind, n)]
    yield "dense", [RunReshape((14 * 14 * 4,)), StackedDense(10, "linear", kernels[k:k + n], biases[k:k + n])]

def eager(layers, inputs):
    return [np.asarray(gradient) for gradient in gradients(layers, inputs)]

def compiled(layers, inputs):
    return [np.asarray(gradient) for gradient in tf.function(lambda values: gradients(layers, values))(inputs)]

worst = {}
for mode, compute in (("eager", eager), ("graph", compiled)):  # graph: a compiled step, as fit runs it
    for index, (kind, group) in enumerate(layer_sets(0, runs)):
        together = compute(group, x)
        for run in range(runs):
            _, alone = list(layer_sets(run, 1))[index]
            for found, expected in zip(together, compute(alone, x[run:run + 1])):
                scale = float(np.max(np.abs(expected[0]))) or 1.0
                key = f"{mode} {kind} {len(expected.shape)}d"
                worst[key] = max(worst.get(key, 0.0), float(np.max(np.abs(found[run] - expected[0]))) / scale)
print(json.dumps(worst))
"""


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_each_run_slices_gradients_equal_the_run_alone(onednn):
    # One thread: with more, oneDNN splits one run's matmul across them but a group's by run (tests/conftest.py).
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
           "TF_NUM_INTRAOP_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=Path(__file__).resolve().parents[3], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    worst = json.loads(result.stdout.strip().splitlines()[-1])
    # conv kernel (5-d), conv bias and the normalization's gamma and beta (2-d), per normalization;
    # the Dense head's kernel (3-d) and bias (2-d); each eager and in a compiled step.
    kinds = ["batchnorm 2d", "batchnorm 5d", "dense 2d", "dense 3d", "layernorm 2d", "layernorm 5d"]
    assert sorted(worst) == sorted(f"{mode} {kind}" for mode in ("eager", "graph") for kind in kinds)
    assert all(value == 0.0 for value in worst.values()), worst
