"""The one interface through which training reports what it measures.

The trainer never talks to a database or a queue: it hands plain dicts to a
``Sink``. The Celery task passes a sink that writes through the app's storage
layer; tests and benchmarks pass ``MemorySink``. A group of runs trained together
reports each epoch of all its runs in one ``record`` call, which the storage sink writes
in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class RunEpoch:
    """What one run of a group recorded at one epoch (epoch 0 is before any step: no metrics).

    ``metrics``: loss, accuracy, val_loss, val_accuracy, seconds. ``layers``: per-layer tensor
    statistics, each ``{"layer": str, "index": int, "kind": one of app/domain/layers.py's TENSOR_KINDS, "mean",
    "std", "min", "max", "l2", "edges": [...], "counts": [...], "nonfinite": int}``.
    ``diagnostics``: per-layer unit diagnostics on the probe batch (app/domain/units.py), each
    ``{"layer", "index", "activation", "units", "dead_fraction", "saturated_fraction", "mean",
    "std", "unit_spread", "units_identical", ...}``; a fraction is None where it does not apply.
    """

    run_id: int
    metrics: dict[str, float] | None
    layers: list[dict[str, Any]]
    diagnostics: list[dict[str, Any]]


class Sink(Protocol):
    def record(self, epoch: int, runs: list[RunEpoch]) -> None:
        """Every run of the group at one epoch, in one call, so a store can write it at once."""

    def progress(self, run_id: int, epoch: int, batch: int, batches: int) -> None:
        """Where training is inside the current epoch (1-based epoch being trained)."""

    def should_stop(self, run_id: int) -> bool:
        """True when the run was cancelled or the worker is shutting down."""


@dataclass
class MemorySink:
    """Keeps everything in memory: for tests, benchmarks and the training core used alone."""

    epochs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    layers: dict[int, dict[int, list[dict[str, Any]]]] = field(default_factory=dict)
    diagnostics: dict[int, dict[int, list[dict[str, Any]]]] = field(default_factory=dict)
    progress_calls: int = 0
    stop_after_epoch: int | None = None
    _epoch_seen: dict[int, int] = field(default_factory=dict)

    def record(self, epoch: int, runs: list[RunEpoch]) -> None:
        for entry in runs:
            if entry.metrics is not None:
                self.epochs.setdefault(entry.run_id, []).append({"epoch": epoch, **entry.metrics})
                self._epoch_seen[entry.run_id] = epoch
            self.layers.setdefault(entry.run_id, {})[epoch] = entry.layers
            self.diagnostics.setdefault(entry.run_id, {})[epoch] = entry.diagnostics

    def progress(self, run_id: int, epoch: int, batch: int, batches: int) -> None:
        self.progress_calls += 1

    def should_stop(self, run_id: int) -> bool:
        if self.stop_after_epoch is None:
            return False
        return self._epoch_seen.get(run_id, 0) >= self.stop_after_epoch
