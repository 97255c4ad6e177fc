"""What recording costs in a group: ``train_group`` with its recorder against without (``--runs 1``: a lone run).

Both sides train the same group (seed 001's model and schemes, seeds 0, 1, ...) on the
same prepared arrays; the only difference is the ``GroupRecorder`` callback (epoch-0 and
per-epoch weight and gradient summaries of every run, per-run metrics, throttled
progress and stop checks) writing to a ``MemorySink``. The time spent inside the
recorder's own hooks is measured directly too, since on a shared machine the difference
of two multi-second trainings is noisier than the cost. Run it the way a worker runs
(``TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1``). Last line: ``overhead_pct=...``
(with over without, median of the per-repeat wall-time ratios, in %).

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python bench/fused_overhead.py --runs 8
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _harness import describe_machine, median, report_ratio, time_alternating, time_hooks

from app.domain.spec import run_setup
from worker.training.datasets import prepare_data
from worker.training.recorder import GroupRecorder
from worker.training.sink import MemorySink
from worker.training.trainer import train_group

HOOKS = ("record_initial", "on_epoch_begin", "on_train_batch_begin", "on_epoch_end")
SCHEMES = [("zeros", {}), ("random_normal", {"stddev": 0.01}), ("glorot_uniform", {}), ("he_uniform", {})]


def time_recorder_hooks() -> dict[str, float]:
    """Wrap the recorder's hooks with timers; returns the live per-hook totals (seconds)."""
    return time_hooks(GroupRecorder, HOOKS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("INITLAB_DATA_DIR"))
    parser.add_argument("--train-samples", type=int, default=None, help="default: all 60000")
    parser.add_argument("--runs", type=int, default=8, help="runs in the group")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = prepare_data("mnist", args.train_samples, None, args.data_dir)
    configs = [
        run_setup(index + 1, index // len(SCHEMES), dataset="mnist", train_samples=args.train_samples,
                  hidden_units=[128, 64], epochs=args.epochs, batch_size=128,
                  initializer=SCHEMES[index % len(SCHEMES)][0], initializer_params=SCHEMES[index % len(SCHEMES)][1],
                  output_initializer="glorot_uniform")
        for index in range(args.runs)
    ]
    print(f"machine:  {describe_machine()}; TF_NUM_INTRAOP_THREADS={os.environ.get('TF_NUM_INTRAOP_THREADS')}")
    print(f"workload: mnist {len(data.y_train)} train / {len(data.y_val)} val, 784-128-64-10 ReLU, Adam, batch 128, "
          f"{args.runs} runs fused, {args.epochs} epochs, median of {args.repeats}")
    hook_totals = time_recorder_hooks()

    def forget_warmup():
        for hook in hook_totals:
            hook_totals[hook] = 0.0

    times = time_alternating(
        {
            "train_group without recorder": lambda: train_group(configs, MemorySink(), data=data, record=False),
            "train_group with recorder": lambda: train_group(configs, MemorySink(), data=data),
        },
        args.repeats,
        after_warmup=forget_warmup,
    )
    without, with_ = times["train_group without recorder"], times["train_group with recorder"]
    print(f"without recorder  {without.summary()}")
    print(f"with recorder     {with_.summary()}")
    per_group = {hook: total / args.repeats for hook, total in hook_totals.items()}
    for hook, seconds in per_group.items():
        print(f"  inside {hook:<22} {1000 * seconds:8.1f} ms per group")
    in_hooks = sum(per_group.values())
    print(f"time inside recorder hooks = {in_hooks:.3f} s per group "
          f"= {100 * in_hooks / median(without.wall):.2f} % of the unrecorded group's wall time")
    overhead = report_ratio("with / without recorder", without, with_)
    print(f"overhead_pct={overhead:.2f}")


if __name__ == "__main__":
    main()
