"""initlab's optimizers (one TensorFlow kernel per variable) against Keras's own, side by side.

Two measurements in one process, each alternating the two optimizers (bench/_harness.py):

1. one optimizer step on a fused group's variables (the workload's layer shapes, K runs
   stacked), in a ``tf.function``, milliseconds per step;
2. a whole fused group trained with ``train_group`` (recorder on), the optimizer being the
   only difference, seconds per group.

Run it the way a worker runs (one TensorFlow thread):

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python bench/optimizer_step.py --workload seed-000

Last line: ``group_speedup=X.XX`` (Keras's optimizer over initlab's, median of the paired repeats).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from _harness import describe_machine, median, report_ratio, time_alternating

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import worker.training.trainer as trainer  # noqa: E402
from app.domain.spec import run_setup  # noqa: E402
from worker.training import optimizers  # noqa: E402
from worker.training.datasets import prepare_data  # noqa: E402
from worker.training.sink import MemorySink  # noqa: E402

# The workloads' fused groups as `initlab up` forms them on 2 cores (bench/workloads.py).
WORKLOADS = {
    "seed-000": dict(runs=6, dataset="fashion_mnist", train_samples=None, epochs=1,
                     model=dict(hidden_units=[256, 128], activation="relu", dropout=0.2)),
    "deep": dict(runs=4, dataset="mnist", train_samples=20000, epochs=1,
                 model=dict(hidden_units=[256] * 10, activation="relu")),
    "seed-001": dict(runs=8, dataset="mnist", train_samples=None, epochs=1,
                     model=dict(hidden_units=[128, 64], activation="relu")),
}


def step_seconds(make, shapes: list[tuple[int, ...]]):
    """A callable applying one step of ``make()`` to variables of ``shapes`` 50 times."""
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(0, 0.05, shape).astype(np.float32)) for shape in shapes]
    gradients = [tf.constant(rng.normal(0, 0.01, shape).astype(np.float32)) for shape in shapes]
    optimizer = make()
    optimizer.build(variables)
    step = tf.function(lambda: optimizer.apply(gradients, variables))

    def fifty():
        for _ in range(50):
            step()
    return fifty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="seed-000")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("INITLAB_DATA_DIR"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    workload = WORKLOADS[args.workload]
    setups = [run_setup(index + 1, index, dataset=workload["dataset"], train_samples=workload["train_samples"],
                        epochs=workload["epochs"], batch_size=128, initializer="glorot_uniform", **workload["model"])
              for index in range(workload["runs"])]
    data = prepare_data(workload["dataset"], workload["train_samples"], None, args.data_dir)
    model = trainer.build_network(setups, *trainer.rows_variable(data.x_train, data.x_val))
    shapes = [tuple(variable.shape) for variable in model.trainable_variables]
    print(f"machine:  {describe_machine()}; TF_NUM_INTRAOP_THREADS={os.environ.get('TF_NUM_INTRAOP_THREADS')}, "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}")
    print(f"workload: {args.workload}, {workload['runs']} runs fused, "
          f"{sum(int(np.prod(shape)) for shape in shapes)} weights, median of {args.repeats}")
    gc.freeze()

    steps = time_alternating({"keras Adam, 50 steps": step_seconds(lambda: keras.optimizers.Adam(0.001), shapes),
                              "initlab Adam, 50 steps": step_seconds(lambda: optimizers.Adam(0.001), shapes)},
                             args.repeats)
    keras_step = median(steps["keras Adam, 50 steps"].wall) / 50
    initlab_step = median(steps["initlab Adam, 50 steps"].wall) / 50
    print(f"one Adam step: keras {1000 * keras_step:.2f} ms, initlab {1000 * initlab_step:.2f} ms")

    def group(make):
        def train():
            trainer.optimizer = make
            trainer.train_group(setups, MemorySink(), data=data)
        return train

    groups = time_alternating(
        {"group, keras Adam": group(lambda setup: keras.optimizers.Adam(setup.training.learning_rate)),
         "group, initlab Adam": group(optimizers.optimizer)},
        args.repeats)
    trainer.optimizer = optimizers.optimizer
    overhead = report_ratio("keras / initlab", groups["group, initlab Adam"], groups["group, keras Adam"])
    print(f"step_speedup={keras_step / initlab_step:.2f}")
    print(f"group_speedup={1 + overhead / 100:.2f}")


if __name__ == "__main__":
    main()
