"""Does fused training pay on this machine's accelerator? Seed 001's study, two ways, on one JAX device.

A GPU machine for initlab has JAX with CUDA and may have no TensorFlow, no Celery and no
database, so this drives the training core directly (numpy, JAX and Keras, plus initlab's
own app/domain and worker/training, which import nothing else on the JAX backend):

1. fused: the study's 16 runs as one group (worker/training/trainer.py ``train_group``, the
   recorder left out, as bench/fused_overhead.py measures it), one model of 16 slices;
2. seed loop: the same 16 runs as seed 001's comparison loop trains them, one plain
   ``keras.Sequential`` ``model.fit`` after another (bench/sequential_loop.py's models:
   the registry's initializers, Adam, batch 128, validated on the test split).

Both on JAX's default device (the first GPU when there is one), timed around training only
(data loaded once before). Prints the device, the group size INITLAB_FUSE_MAX=auto would
choose there (app/domain/memory.py, against the memory JAX reports), each initializer's final
validation accuracy (mean over seeds) both ways, and as its last line
``device=NAME speedup_vs_seed_loop=X.XX`` (seed loop time / fused time).

    python bench/gpu_check.py                 # MNIST, 4 initializers x seeds 0-3, 2 epochs
    python bench/gpu_check.py --quick         # 2,048 samples, 1 epoch, seed 0: a smoke test (CPU JAX too)
    python bench/gpu_check.py --seeds 64 --no-loop   # issue 15's 256-run study, fused only
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/sequential_loop.py: the seed loop's models

# Seed 001's study (bench/workloads.py SEED_001, bench/study_speed.py study_body): MNIST,
# 784-128-64-10 ReLU, softmax output with glorot_uniform, Adam, batch 128.
INITIALIZERS = ["zeros", {"id": "random_normal", "params": {"stddev": 0.01}}, "glorot_uniform", "he_uniform"]


def study(epochs: int, seeds: list[int], train_samples: int | None = None, validation_samples: int | None = None):
    """Seed 001's study body; the sample counts subset MNIST (None: all of it)."""
    dataset: dict = {"name": "mnist"}
    if train_samples:
        dataset.update(train_samples=train_samples, validation_samples=validation_samples)
    return {"name": "gpu check: seed 001", "dataset": dataset,
            "model": {"hidden_units": [128, 64], "activation": "relu", "output_initializer": "glorot_uniform"},
            "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": epochs},
            "initializers": INITIALIZERS, "seeds": seeds}


def train_fused(setups, data) -> tuple[float, dict[int, float]]:
    """Seconds to train every run as one group, and each run's final validation accuracy."""
    from worker.training.sink import MemorySink
    from worker.training.trainer import train_group

    started = time.perf_counter()
    outcomes = train_group(setups, MemorySink(), data=data, record=False)
    seconds = time.perf_counter() - started
    return seconds, {run_id: outcome.final["val_accuracy"] for run_id, outcome in outcomes.items()}


def train_seed_loop(setups, data) -> tuple[float, dict[int, float]]:
    """Seconds to train the runs one plain Keras model after another, and each one's final validation accuracy."""
    import keras

    from sequential_loop import plain_model

    accuracy, started = {}, time.perf_counter()
    for setup in setups:
        keras.utils.set_random_seed(setup.seed)
        model = plain_model(setup, data.x_train.shape[1])
        history = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                            batch_size=setup.training.batch_size, epochs=setup.epochs, verbose=0)
        accuracy[setup.run_id] = float(history.history["val_accuracy"][-1])
    return time.perf_counter() - started, accuracy


def by_initializer(setups, accuracy: dict[int, float]) -> dict[str, float]:
    """Mean final validation accuracy over seeds, per initializer."""
    grouped: dict[str, list[float]] = {}
    for setup in setups:
        grouped.setdefault(setup.kernel.key, []).append(accuracy[setup.run_id])
    return {key: statistics.mean(values) for key, values in grouped.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="2,048 samples, 1 epoch, seed 0 (a smoke test)")
    parser.add_argument("--epochs", type=int, default=None, help="default: 2 (--quick: 1)")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("INITLAB_DATA_DIR"),
                        help="folder with mnist/ IDX files (default: INITLAB_DATA_DIR)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1 per initializer (default 4: 16 runs)")
    parser.add_argument("--no-loop", action="store_true", help="time the fused group only (a 256-run loop takes long)")
    args = parser.parse_args(argv)

    # JAX is the GPU path; a process picks its Keras backend once, at the first import of Keras.
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras

    if keras.backend.backend() != "jax":
        parser.error(f"Keras was imported on {keras.backend.backend()} before this check could choose JAX")

    from app.domain.memory import auto_group_size
    from app.domain.spec import StudySpec
    from worker.training.datasets import prepare_data
    from worker.training.device import describe_device, device_memory

    if args.quick:
        spec = StudySpec.model_validate(study(args.epochs or 1, [0], 2048, 1024))
    else:
        spec = StudySpec.model_validate(study(args.epochs or 2, list(range(args.seeds))))
    setups = [spec.setup(index + 1, planned.initializer, planned.seed, planned.activation, planned.depth)
              for index, planned in enumerate(spec.runs())]
    data = prepare_data(spec.dataset.name, spec.dataset.train_samples, spec.dataset.validation_samples,
                        args.data_dir, spec.dataset.subset_seed, download=False)
    device, memory = describe_device(), device_memory()
    print(f"keras {keras.__version__} on {keras.backend.backend()}, jax {jax.__version__}; "
          f"default device {jax.devices()[0]} ({device})", flush=True)
    memory_text = "none reported (CPU)" if memory is None else f"{memory / 2**30:.1f} GiB"
    print(f"device memory {memory_text}; INITLAB_FUSE_MAX=auto would train these {len(setups)} runs "
          f"in groups of {auto_group_size(spec, len(setups), memory)}", flush=True)
    print(f"{len(setups)} runs, {len(data.y_train)} training and {len(data.y_val)} validation samples, "
          f"{spec.training.epochs} epoch(s)", flush=True)

    # Keras seeds TensorFlow too where it is installed, importing it on first use (seconds):
    # done here, so that neither timing pays for it. Without TensorFlow this is a no-op.
    keras.utils.set_random_seed(0)
    fused_s, fused = train_fused(setups, data)
    print(f"fused: {len(setups)} runs as one group in {fused_s:.2f} s", flush=True)
    if args.no_loop:
        print(f"device={device.replace(' ', '_')} runs={len(setups)} fused_seconds={fused_s:.2f}", flush=True)
        return 0
    loop_s, loop = train_seed_loop(setups, data)
    print(f"seed loop: {len(setups)} runs one after another in {loop_s:.2f} s", flush=True)

    fused_acc, loop_acc = by_initializer(setups, fused), by_initializer(setups, loop)
    print("final validation accuracy, mean over seeds (fused / seed loop):")
    for key in fused_acc:
        print(f"  {key:<28} {fused_acc[key]:.4f} / {loop_acc[key]:.4f}")
    print(f"device={device.replace(' ', '_')} speedup_vs_seed_loop={loop_s / fused_s:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
