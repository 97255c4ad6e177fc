"""worker/training/run_layers.py's per-run layers, one gradient at a time, under both of
TensorFlow's CPU kernel sets.

With TF_ENABLE_ONEDNN_OPTS=1 TensorFlow fuses a Conv2D directly followed by its bias add, and
that fused op gave every run slice but the first a wrong bias gradient (relative error ~1, not
rounding: the runs' fused CNNs then trained differently from the same runs alone). StackedConv
adds its bias to the output seen as (positions, channels), which the fusion does not match; and
RunNormalization scales and offsets run by run, so that each parameter's gradient sums one
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
from worker.training.run_layers import RunNormalization, StackedConv

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
    return [np.asarray(g) for g in tape.gradient(loss, variables)]

worst = {}
for kind in ("layernorm", "batchnorm"):
    group = [StackedConv(8, 3, "linear", kernels, biases), RunNormalization(kind, runs)]
    together = gradients(group, x)
    for run in range(runs):
        alone = [StackedConv(8, 3, "linear", kernels[run:run + 1], biases[run:run + 1]), RunNormalization(kind, 1)]
        for found, expected in zip(together, gradients(alone, x[run:run + 1])):
            scale = float(np.max(np.abs(expected[0]))) or 1.0
            key = f"{kind} {len(expected.shape)}d"
            worst[key] = max(worst.get(key, 0.0), float(np.max(np.abs(found[run] - expected[0]))) / scale)
print(json.dumps(worst))
"""


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_each_run_slices_gradients_equal_the_run_alone(onednn):
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=Path(__file__).resolve().parents[3], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    worst = json.loads(result.stdout.strip().splitlines()[-1])
    # conv kernel (5-d), conv bias and the normalization's gamma and beta (2-d), per normalization.
    assert sorted(worst) == ["batchnorm 2d", "batchnorm 5d", "layernorm 2d", "layernorm 5d"]
    assert all(value == 0.0 for value in worst.values()), worst
