"""One epoch of a fused group, written in one transaction.

A group of N runs used to write each run's metrics, layer statistics and diagnostics in
separate transactions: 3·N commits per group epoch, each of which changes the study's
version (app/storage/views.py), so every open page recomputed its views up to 3·N times in
a burst. Written together, a group epoch is one commit and one new version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from app.storage.db import session_scope
from app.storage.diagnostics import write_diagnostics
from app.storage.records import owned_runs, write_epoch, write_layers


class RunEpochRows(Protocol):
    """What one run recorded at one epoch (the worker's RunEpoch); metrics is None at epoch 0."""

    run_id: int
    metrics: dict[str, float] | None
    layers: list[dict[str, Any]]
    diagnostics: list[dict[str, Any]]


def record_group_epoch(epoch: int, runs: Sequence[RunEpochRows], owner: str | None = None) -> list[int]:
    """Write every run's rows of ``epoch`` at once; returns the runs not written.

    Fenced like record_epoch, run by run: a run no longer running under ``owner`` (its lease
    was lost and another worker claimed it) is skipped, and returned, while the others are
    written.
    """
    ids = sorted(entry.run_id for entry in runs)
    with session_scope() as session:
        owned = owned_runs(session, ids, owner)
        for entry in runs:
            if entry.run_id not in owned:
                continue
            if entry.metrics is not None:
                write_epoch(session, entry.run_id, epoch, entry.metrics)
            write_layers(session, entry.run_id, epoch, entry.layers)
            write_diagnostics(session, entry.run_id, epoch, entry.diagnostics)
    return [run_id for run_id in ids if run_id not in owned]
