"""Comparisons of a run trained in a group with the same run trained alone (within 1e-4)."""

from __future__ import annotations

from worker.training.sink import MemorySink

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
RELATIVE = 1e-4


def close(a: float, b: float, relative: float = RELATIVE, absolute: float = 0.0) -> bool:
    return abs(a - b) <= max(relative * max(abs(a), abs(b)), absolute)


def assert_same_epochs(fused: MemorySink, alone: MemorySink, run_id: int) -> None:
    got, want = fused.epochs.get(run_id, []), alone.epochs.get(run_id, [])
    assert want, f"run {run_id} recorded no epoch alone: nothing to compare"
    assert [epoch["epoch"] for epoch in got] == [epoch["epoch"] for epoch in want]
    for a, b in zip(got, want):
        for name in METRICS:
            assert close(a[name], b[name]), (run_id, a["epoch"], name, a[name], b[name])


def assert_same_layers(fused: MemorySink, alone: MemorySink, run_id: int, gradient_relative: float = RELATIVE) -> None:
    assert alone.layers.get(run_id), f"run {run_id} recorded no layer statistics alone: nothing to compare"
    assert sorted(fused.layers[run_id]) == sorted(alone.layers[run_id])
    for epoch, records in alone.layers[run_id].items():
        got = fused.layers[run_id][epoch]
        assert records, (run_id, epoch)
        assert [(r["layer"], r["index"], r["kind"]) for r in got] == [(r["layer"], r["index"], r["kind"]) for r in records]
        for a, b in zip(got, records):
            assert a["counts"] and sum(a["counts"]) == sum(b["counts"])
            # The output layer's gradient (through the softmax in the loss) sums to ~0, so its mean is compared against its spread.
            relative = gradient_relative if a["kind"] == "gradient" else RELATIVE
            for name in ("std", "l2", "min", "max"):
                assert close(a[name], b[name], relative, absolute=1e-7), (run_id, epoch, a["layer"], a["kind"], name,
                                                                        a[name], b[name])
            assert close(a["mean"], b["mean"], relative, absolute=relative * b["std"] + 1e-9), (run_id, epoch, a["layer"],
                                                                                               a["kind"], a["mean"], b["mean"])
