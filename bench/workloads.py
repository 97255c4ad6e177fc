"""Every workload of the speed matrix, end to end: initlab against the plain sequential Keras loop.

For each workload, on one machine one after the other: the sequential loop
(bench/sequential_loop.py: one ``model.fit`` per run) and initlab (``initlab up``, the embedded
default, from POST to the last run's finished_at; bench/study_speed.py's harness). Prints one
line per workload ``workload=NAME speedup_vs_seed_loop=X.XX peak_fraction=0.YY`` and writes a
table to bench/RESULTS.md's "Workload matrix" section (--record).

peak_fraction is the training FLOP rate initlab achieved (forward + backward of every training
sample, 6 × weights per sample, plus 2 × weights per validation sample, counted from the layer
shapes) over this machine's dense-matmul peak, measured in the same run: numpy's float32 matmul
of 2048 × 2048 matrices with every core (the BLAS TensorFlow does not use, but the same silicon),
measured before the first workload and after each, the highest figure so far.

    python bench/workloads.py                     # all workloads
    python bench/workloads.py --only seed-001 --record
    python bench/workloads.py --only cnn --train-samples 10000   # issue 12's CNN workload on a subset

FLOPs count a convolution's kernel at every output position (pooling, normalization and the
loss are not counted).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study_speed import ROOT, describe_machine, run_initlab  # noqa: E402

SEED_001 = {"name": "workload: seed 001", "dataset": {"name": "mnist"},
            "model": {"hidden_units": [128, 64], "activation": "relu", "output_initializer": "glorot_uniform"},
            "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 2},
            "initializers": ["zeros", {"id": "random_normal", "params": {"stddev": 0.01}}, "glorot_uniform", "he_uniform"],
            "seeds": [0, 1, 2, 3]}
SEED_000 = {"name": "workload: seed 000", "dataset": {"name": "fashion_mnist"},
            "model": {"hidden_units": [256, 128], "activation": "relu", "dropout": 0.2},
            "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 3},
            "initializers": ["zeros", "ones", "uniform_0_1", "uniform_fan_in", "normal_fan_in", "keras_default"],
            "seeds": [0, 1]}
DEEP = {"name": "workload: deep", "dataset": {"name": "mnist", "train_samples": 20000, "validation_samples": 5000},
        "model": {"hidden_units": [256] * 10, "activation": "relu"},
        "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 2},
        "initializers": ["he_normal", "glorot_uniform", {"id": "random_normal", "params": {"stddev": 0.01}}, "lecun_normal"],
        "seeds": [0, 1]}
CNN = {"name": "workload: cnn", "dataset": {"name": "fashion_mnist"},
       "model": {"family": "cnn", "conv_channels": [16, 32], "pooling": "max", "hidden_units": [64], "activation": "relu"},
       "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 2},
       "initializers": ["he_normal", "glorot_uniform", "lecun_normal", "delta_orthogonal"], "seeds": [0, 1, 2, 3]}
WORKLOADS = {"seed-001": SEED_001, "seed-000": SEED_000, "deep": DEEP, "cnn": CNN}
app = typer.Typer(add_completion=False)


def training_flops(body: dict) -> float:
    """Forward + backward FLOPs of every run's training, plus its validation forward passes."""
    from app.domain.datasets import DATASETS
    from app.domain.spec import StudySpec

    spec = StudySpec.model_validate(body)
    info = DATASETS[spec.dataset.name]
    train = spec.dataset.train_samples or info.train_size
    val = spec.dataset.validation_samples or info.test_size
    total = 0.0
    for planned in spec.runs():
        network = spec.architecture(planned.depth)
        # Multiply-adds per sample: a Dense layer's weights once, a convolution's at every output position.
        positions = {hidden.layer.name: math.prod(hidden.output_shape[:-1]) for hidden in network.hidden}
        macs = sum(math.prod(layer.kernel_shape) * positions.get(layer.name, 1) for layer in network.weighted())
        total += spec.planned_epochs * (6 * macs * train + 2 * macs * val)
    return total


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """float32 GFLOP/s of numpy's matmul with every core: the machine's dense-matmul ceiling here."""
    import numpy as np

    a, b = (np.random.default_rng(0).standard_normal((size, size)).astype(np.float32) for _ in range(2))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def run_loop(body: dict, data_dir: Path | None, workdir: Path, name: str) -> dict:
    study, out = workdir / f"{name}.json", workdir / f"{name}-loop.json"
    study.write_text(json.dumps(body))
    env = {**os.environ, **({"INITLAB_DATA_DIR": str(data_dir)} if data_dir else {})}
    subprocess.run([sys.executable, str(ROOT / "bench" / "sequential_loop.py"), str(study), "--json-out", str(out)],
                   cwd=ROOT, env=env, check=True, stdout=sys.stderr)
    return json.loads(out.read_text())


def mean_accuracy(runs: list[dict], key) -> dict[str, float]:
    grouped: dict[str, list[float]] = {}
    for run in runs:
        grouped.setdefault(key(run), []).append(run["val_accuracy"])
    return {name: statistics.mean(values) for name, values in grouped.items()}


@app.command()
def main(only: list[str] = typer.Option(None, help="workload names (default: all)"),
         train_samples: int = typer.Option(None, help="a training subset for every workload (default: each its own)"),
         data_dir: Path = typer.Option(None, envvar="INITLAB_DATA_DIR"),
         record: bool = typer.Option(False, help="append the table to bench/RESULTS.md")) -> None:
    # The peak is a ceiling: another process on a shared VM can only lower one measurement
    # (108 against 205 GFLOP/s seen minutes apart), so it is measured again after every workload
    # and each fraction uses the highest figure so far.
    peaks = [matmul_peak()]
    print(f"machine: {describe_machine()}; load average {os.getloadavg()}; matmul peak {peaks[0]:.1f} GFLOP/s",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="initlab-workloads-") as tmp:
        workdir = Path(tmp)
        for name in only or list(WORKLOADS):
            body = WORKLOADS[name]
            if train_samples:
                body = {**body, "dataset": {**body["dataset"], "train_samples": train_samples}}
            loop = run_loop(body, data_dir, workdir, name)
            initlab = run_initlab(body, data_dir, None, workdir, name)
            loop_acc = mean_accuracy(loop["runs"], lambda run: run["initializer"].split("(")[0])
            mine_acc = mean_accuracy(initlab["runs"], lambda run: run["initializer"])
            worst = max(abs(loop_acc[k] - mine_acc[k]) for k in loop_acc)
            for key in loop_acc:
                print(f"  {name} {key:<28} final val accuracy, mean over seeds: loop {loop_acc[key]:.4f} "
                      f"initlab {mine_acc[key]:.4f}", flush=True)
            speedup = loop["seconds"] / initlab["seconds"]
            peaks.append(matmul_peak())
            peak = max(peaks)
            print(f"  matmul peak after {name}: {peaks[-1]:.1f} GFLOP/s (highest so far {peak:.1f})", flush=True)
            fraction = training_flops(body) / initlab["seconds"] / (peak * 1e9)
            rows.append((name, loop["seconds"], initlab["seconds"], speedup, fraction, worst))
            print(f"workload={name} speedup_vs_seed_loop={speedup:.2f} peak_fraction={fraction:.2f} "
                  f"(loop {loop['seconds']:.1f} s, initlab {initlab['seconds']:.1f} s, "
                  f"largest accuracy difference {100 * worst:.2f} points)", flush=True)
    if record:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines = [f"\n### Workload matrix, {stamp} ({describe_machine()}; matmul peak {max(peaks):.1f} GFLOP/s)\n",
                 "| workload | sequential loop | initlab | speedup | peak fraction | largest accuracy difference |",
                 "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {n} | {a:.1f} s | {b:.1f} s | {s:.2f} | {f:.2f} | {100 * w:.2f} points |" for n, a, b, s, f, w in rows]
        with open(ROOT / "bench" / "RESULTS.md", "a") as results:
            results.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    app()
