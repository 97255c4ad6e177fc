"""What the quantiles cost the recorder: tensor summaries of seed 001's model at several Q.

Per epoch the recorder summarises nine tensors (kernel, bias, gradient of the 784-128,
128-64 and 64-10 Dense layers). This times those nine summaries for Q = 64, 128, 256 and
for the summary as it was before quantiles (np.histogram on the unsorted values), and
prints the JSON size of one row's quantiles. An epoch of seed 001 on the 2-core VM takes
about 1.3 s (bench/RESULTS.md), against which the figures are read. Last line: the cost at
the chosen Q in ms per epoch.

    python bench/summary_cost.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from worker.training.stats import QUANTILES, tensor_summary  # noqa: E402

SHAPES = [(784, 128), (128,), (784, 128), (128, 64), (64,), (128, 64), (64, 10), (10,), (64, 10)]


def histogram_only(values: np.ndarray) -> dict:
    """The summary before quantiles: moments and np.histogram of the finite values."""
    flat = values.astype(np.float32, copy=False).reshape(-1)
    wide = flat.astype(np.float64)
    finite = flat[np.isfinite(flat)]
    counts, edges = np.histogram(finite, bins=64)
    return {"mean": float(wide.mean()), "std": float(wide.std()), "l2": float(np.sqrt(np.einsum("i,i->", wide, wide))),
            "edges": edges.tolist(), "counts": counts.tolist()}


def per_epoch_ms(summarise, tensors, repeats: int = 200) -> float:
    for tensor in tensors:
        summarise(tensor)
    start = time.perf_counter()
    for _ in range(repeats):
        for tensor in tensors:
            summarise(tensor)
    return 1000 * (time.perf_counter() - start) / repeats


def main() -> None:
    rng = np.random.default_rng(0)
    tensors = [rng.normal(0, 0.05, size=shape).astype(np.float32) for shape in SHAPES]
    print(f"before quantiles (np.histogram): {per_epoch_ms(histogram_only, tensors):.2f} ms per epoch")
    chosen = None
    for q in (64, 128, 256):
        ms = per_epoch_ms(lambda t, q=q: tensor_summary(t, quantiles=q), tensors)
        size = len(json.dumps(tensor_summary(tensors[0], quantiles=q)["quantiles"]))
        print(f"Q={q:<4} {ms:.2f} ms per epoch, {size} bytes of quantiles per row")
        chosen = ms if q == QUANTILES else chosen
    print(f"summary_ms_per_epoch_at_Q{QUANTILES}={chosen:.2f}")


if __name__ == "__main__":
    main()
