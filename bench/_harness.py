"""Shared plumbing for the overhead benchmarks: arguments, data, the run config, timing.

Both benchmarks compare two ways of training the same model on the same arrays inside
one process, alternating them so that machine noise (another process, thermal state)
hits both sides alike, and report the median of the repeats.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.training.datasets import PreparedData, prepare_data  # noqa: E402
from app.domain.spec import RunSetup, run_setup  # noqa: E402


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("INITLAB_DATA_DIR"),
                        help="folder with mnist/ IDX files (default: $INITLAB_DATA_DIR)")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--train-samples", type=int, default=None, help="default: all 60000")
    parser.add_argument("--validation-samples", type=int, default=None, help="default: all 10000")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 64],
                        help="hidden widths (default: seed 001's 128 64)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per side")
    return parser.parse_args()


def load(args: argparse.Namespace) -> PreparedData:
    return prepare_data(args.dataset, args.train_samples, args.validation_samples, args.data_dir)


def run_config(args: argparse.Namespace, run_id: int = 1) -> RunSetup:
    """Seed 001's model: ReLU MLP, Keras's default init, Adam at its default rate."""
    return run_setup(
        run_id, 1, dataset=args.dataset, hidden_units=list(args.hidden),
        activation="relu", optimizer="adam", learning_rate=0.001,
        batch_size=args.batch_size, epochs=args.epochs, initializer="keras_default",
    )


@dataclass
class Timings:
    """Per-repeat wall seconds and process CPU seconds (all threads) of one side."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def summary(self) -> str:
        return (f"wall median {median(self.wall):.3f} s (min {min(self.wall):.3f}, "
                f"max {max(self.wall):.3f}) | cpu median {median(self.cpu):.3f} s")


def time_alternating(
    sides: dict[str, Callable[[], object]],
    repeats: int,
    after_warmup: Callable[[], None] | None = None,
) -> dict[str, Timings]:
    """Time each side ``repeats`` times, in the order A B, B A, A B, ...

    One untimed warm-up of each side first absorbs one-time costs of the process
    (TensorFlow start-up, thread pools) that a long-running worker pays once. Reversing
    the order every repeat cancels "the run after another run is slower" effects.
    CPU time is reported beside wall time because it is far less disturbed by other
    processes on a shared machine.
    """
    for run in sides.values():
        run()
    if after_warmup is not None:
        after_warmup()
    timings = {name: Timings() for name in sides}
    names = list(sides)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            wall, cpu = time.perf_counter(), time.process_time()
            sides[name]()
            timings[name].wall.append(time.perf_counter() - wall)
            timings[name].cpu.append(time.process_time() - cpu)
            print(f"  repeat {repeat + 1}: {name:<28} wall {timings[name].wall[-1]:7.3f} s  "
                  f"cpu {timings[name].cpu[-1]:7.3f} s", flush=True)
    return timings


def median(values: list[float]) -> float:
    return statistics.median(values)


def report_ratio(label: str, baseline: Timings, measured: Timings) -> float:
    """Print the ratios and return the wall-time overhead in percent.

    The headline is the median of per-repeat ratios: the two runs of one repeat sit next
    to each other in time, so slow drifts of the machine's load cancel within a pair.
    """
    def paired(kind: str) -> float:
        pairs = zip(getattr(measured, kind), getattr(baseline, kind))
        return median([after / before for after, before in pairs])

    wall_medians = median(measured.wall) / median(baseline.wall)
    print(f"{label}: paired wall ratio {paired('wall'):.4f}, paired cpu ratio {paired('cpu'):.4f}, "
          f"ratio of wall medians {wall_medians:.4f}")
    print(f"overhead_cpu_pct={100 * (paired('cpu') - 1):.2f}")
    return 100 * (paired("wall") - 1)


def cpu_model() -> str:
    """lscpu's model name (platform.processor() is often empty on Linux)."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model


def describe_machine() -> str:
    import keras

    return f"{cpu_model()}, {os.cpu_count()} CPU cores, keras {keras.__version__} ({keras.backend.backend()})"


def time_hooks(cls: type, hooks: tuple[str, ...]) -> dict[str, float]:
    """Wrap ``cls``'s methods ``hooks`` with timers; returns the live per-hook totals (seconds)."""
    totals = {hook: 0.0 for hook in hooks}
    for hook in hooks:
        original = getattr(cls, hook)

        @functools.wraps(original)
        def timed(self, *args, _original=original, _hook=hook, **kwargs):
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                totals[_hook] += time.perf_counter() - start

        setattr(cls, hook, timed)
    return totals


def describe_workload(args: argparse.Namespace, data: PreparedData) -> str:
    widths = "-".join(str(width) for width in [data.x_train.shape[1], *args.hidden, 10])
    return (f"{args.dataset} {len(data.y_train)} train / {len(data.y_val)} val, {widths} ReLU, "
            f"Adam, batch {args.batch_size}, {args.epochs} epochs, median of {args.repeats}")
