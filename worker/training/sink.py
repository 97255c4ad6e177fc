"""The one interface through which training reports what it measures.

The trainer never talks to a database or a queue: it hands plain dicts to a
``Sink``. The Celery task passes a sink that writes through the app's storage
layer; tests and benchmarks pass ``MemorySink``; a fused trainer that trains
several runs at once calls the same methods once per run id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class Sink(Protocol):
    def record_epoch(self, run_id: int, epoch: int, metrics: dict[str, float]) -> None:
        """Per-epoch metrics: loss, accuracy, val_loss, val_accuracy, seconds."""

    def record_layers(self, run_id: int, epoch: int, layers: list[dict[str, Any]]) -> None:
        """Per-layer tensor statistics for one epoch (epoch 0 is before any step).

        Each item: ``{"layer": str, "index": int, "kind": "kernel"|"bias"|"gradient",
        "mean", "std", "min", "max", "l2", "edges": [...], "counts": [...], "nonfinite": int}``.
        """

    def record_diagnostics(self, run_id: int, epoch: int, layers: list[dict[str, Any]]) -> None:
        """Per-layer unit diagnostics on the probe batch, at the same epochs as ``record_layers``.

        Each item (worker/training/activations.py): ``{"layer", "index", "activation", "units",
        "dead_fraction", "saturated_fraction", "mean", "std", "unit_spread", "units_identical"}``;
        a fraction is None where it does not apply to the activation.
        """

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

    def record_epoch(self, run_id: int, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.setdefault(run_id, []).append({"epoch": epoch, **metrics})
        self._epoch_seen[run_id] = epoch

    def record_layers(self, run_id: int, epoch: int, layers: list[dict[str, Any]]) -> None:
        self.layers.setdefault(run_id, {})[epoch] = layers

    def record_diagnostics(self, run_id: int, epoch: int, layers: list[dict[str, Any]]) -> None:
        self.diagnostics.setdefault(run_id, {})[epoch] = layers

    def progress(self, run_id: int, epoch: int, batch: int, batches: int) -> None:
        self.progress_calls += 1

    def should_stop(self, run_id: int) -> bool:
        if self.stop_after_epoch is None:
            return False
        return self._epoch_seen.get(run_id, 0) >= self.stop_after_epoch
