"""How far a run is, and when it should be done: the progress bars' arithmetic.

A run row says ``epoch`` (the last completed epoch, set when its metrics are written) and
``batch`` of ``batches`` (the batch reached inside the epoch being trained, set on each
heartbeat). Right after an epoch ends the worker reports batch == batches before the next
epoch's first heartbeat; that batch belongs to the epoch already counted, not to the next.
"""

from __future__ import annotations

from datetime import datetime


def fraction_done(status: str, epoch: int, epochs: int, batch: int, batches: int) -> float:
    """Share of the run's batches done, 0..1 (a succeeded run is 1 whatever it recorded)."""
    if status == "succeeded":
        return 1.0
    if epochs <= 0:
        return 0.0
    inner = batch / batches if status == "running" and 0 < batches and batch < batches else 0.0
    return max(0.0, min(1.0, (epoch + inner) / epochs))


def eta_seconds(started_at: datetime | None, now: datetime, fraction: float) -> float | None:
    """Seconds left at the pace so far (elapsed x (1 - f) / f); None before there is a pace.

    The pace includes the run's start-up (loading data, building the model), so the first
    estimate is pessimistic and improves as the run goes.
    """
    if started_at is None or fraction <= 0.0 or fraction >= 1.0:
        return None
    elapsed = (now - started_at).total_seconds()
    if elapsed <= 0:
        return None
    return elapsed * (1.0 - fraction) / fraction
