"""What recording costs: ``train_run`` with the recorder callback against without it.

Both sides build, compile and fit the identical seeded model on the same prepared arrays;
the only difference is the ``RecorderCallback`` (epoch-0 and per-epoch weight
histograms, the gradient probe, throttled progress and stop checks). The time spent
inside the recorder's own hooks is also measured directly, because on a noisy machine
the difference of two multi-second runs can hide (or invent) a small cost.
Prints the figures, then a last line ``overhead_pct=...`` (with over without: median of
the per-repeat wall-time ratios, in %); ``overhead_cpu_pct`` is the same for CPU time.

    python bench/instrumentation_overhead.py          # full MNIST, 2 epochs
    python bench/instrumentation_overhead.py --train-samples 5000 --repeats 1
"""

from __future__ import annotations


from _harness import (
    describe_machine, describe_workload, load, median, parse_args, report_ratio, run_config,
    time_alternating, time_hooks,
)

from worker.training import recorder as recorder_module
from worker.training.sink import MemorySink
from worker.training.trainer import train_run

HOOKS = ("on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_epoch_end")


def time_recorder_hooks() -> dict[str, float]:
    """Wrap the recorder's hooks with timers; returns the live per-hook totals (seconds)."""
    return time_hooks(recorder_module.RecorderCallback, HOOKS)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    data = load(args)
    config = run_config(args)
    print(f"machine:  {describe_machine()}")
    print(f"workload: {describe_workload(args, data)}")
    hook_totals = time_recorder_hooks()

    def forget_warmup():
        for hook in hook_totals:
            hook_totals[hook] = 0.0

    times = time_alternating(
        {
            "train_run without recorder": lambda: train_run(config, MemorySink(), data=data, record=False),
            "train_run with recorder": lambda: train_run(config, MemorySink(), data=data),
        },
        args.repeats,
        after_warmup=forget_warmup,
    )
    without, with_ = times["train_run without recorder"], times["train_run with recorder"]
    print(f"without recorder  {without.summary()}")
    print(f"with recorder     {with_.summary()}")
    per_run = {hook: total / args.repeats for hook, total in hook_totals.items()}
    for hook, seconds in per_run.items():
        print(f"  inside {hook:<22} {1000 * seconds:8.1f} ms per run")
    in_hooks = sum(per_run.values())
    print(f"time inside recorder hooks = {in_hooks:.3f} s per run "
          f"= {100 * in_hooks / median(without.wall):.2f} % of the unrecorded run's wall time")
    overhead = report_ratio("with / without recorder", without, with_)
    print(f"overhead_pct={overhead:.2f}")

if __name__ == "__main__":
    main()
