"""A lone run as a group of one (today's only training path) against the old ``train_run``.

Issue 10 asked for one training path, "if it is slower, fix that rather than keep two
paths". The old path lives only in git history, so each side runs in its own subprocess
on its own source tree, alternating old, new, new, old, ... so that machine noise hits
both alike. Each subprocess loads the data, trains once untimed (tracing), then times
``--inner`` trainings of the same run; the report is the median of the per-pair ratios.

    git worktree add /tmp/old-tree 093b54e   # the last commit with train_run
    python bench/group_of_one.py --old-tree /tmp/old-tree

Prints ``group_of_one_vs_train_run wall=X.XXX cpu=Y.YYY`` (ratios new / old: below 1 is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETUP = """
import json, sys, time
from pathlib import Path
from worker.training.datasets import prepare_data
from worker.training.sink import MemorySink
args = json.loads(sys.argv[1])
data = prepare_data("mnist", args["train"], args["validation"], Path(args["data_dir"]))
settings = dict(dataset="mnist", hidden_units=[128, 64], activation="relu", optimizer="adam",
                learning_rate=0.001, batch_size=128, epochs=args["epochs"], initializer="he_uniform")
"""
OLD = SETUP + """
from worker.training.trainer import RunConfig, train_run
def once(i):
    return train_run(RunConfig(run_id=i, seed=1, **settings), MemorySink(), data=data)
"""
NEW = SETUP + """
from app.domain.spec import run_setup
from worker.training.trainer import train_group
def once(i):
    return train_group([run_setup(i, 1, **settings)], MemorySink(), data=data)[i]
"""
TIMED = """
assert once(0).status == "succeeded"
walls, cpus = [], []
for i in range(1, args["inner"] + 1):
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = once(i)
    walls.append(time.perf_counter() - wall); cpus.append(time.process_time() - cpu)
    assert outcome.status == "succeeded"
print(json.dumps({"wall": sorted(walls)[len(walls) // 2], "cpu": sorted(cpus)[len(cpus) // 2]}))
"""


def side(tree: Path, code: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    payload = json.dumps({"train": args.train_samples, "validation": args.validation_samples,
                          "epochs": args.epochs, "inner": args.inner, "data_dir": str(args.data_dir)})
    result = subprocess.run([sys.executable, "-c", code + TIMED, payload], cwd=tree, env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{tree}: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-tree", type=Path, required=True, help="a checkout of commit 093b54e")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("INITLAB_DATA_DIR"))
    parser.add_argument("--train-samples", type=int, default=20000)
    parser.add_argument("--validation-samples", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--inner", type=int, default=3, help="timed trainings per subprocess")
    parser.add_argument("--pairs", type=int, default=4, help="old/new subprocess pairs")
    args = parser.parse_args()
    wall_ratios, cpu_ratios = [], []
    for pair in range(args.pairs):
        order = [("old", args.old_tree, OLD), ("new", ROOT, NEW)]
        results = {name: side(tree, code, args) for name, tree, code in (order if pair % 2 == 0 else order[::-1])}
        wall_ratios.append(results["new"]["wall"] / results["old"]["wall"])
        cpu_ratios.append(results["new"]["cpu"] / results["old"]["cpu"])
        print(f"pair {pair}: old wall {results['old']['wall']:.2f} s cpu {results['old']['cpu']:.2f} s, "
              f"new wall {results['new']['wall']:.2f} s cpu {results['new']['cpu']:.2f} s", flush=True)
    print(f"group_of_one_vs_train_run wall={statistics.median(wall_ratios):.3f} cpu={statistics.median(cpu_ratios):.3f}")


if __name__ == "__main__":
    main()
