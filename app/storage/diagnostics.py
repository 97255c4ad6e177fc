"""Unit diagnostics (layer_diagnostics) and the rows the failure tags are decided from.

Writes are fenced by the run's owner like every other record (records.py). Epoch 0 opens
an attempt: writing it removes whatever an earlier attempt of the run left, as claim_run
does for metrics and layer statistics, so a retried run never mixes two trainings.

The failure view reads each run at two moments only, at initialization (epoch 0) and at
its latest recorded epoch, which keeps the query small for a study of any length.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from app.storage.db import session_scope
from app.storage.models import EpochMetric, LayerDiagnostic, LayerStat, Run, Study
from app.storage.records import assert_owner

FIELDS = ("activation", "units", "dead_fraction", "saturated_fraction", "mean", "std", "unit_spread", "units_identical",
          "preact_length", "preact_correlation")


def record_diagnostics(run_id: int, epoch: int, layers: list[dict[str, Any]], owner: str | None = None) -> None:
    with session_scope() as session:
        assert_owner(session, run_id, owner)
        write_diagnostics(session, run_id, epoch, layers)


def write_diagnostics(session, run_id: int, epoch: int, layers: list[dict[str, Any]]) -> None:
    """record_diagnostics inside a caller's transaction (app/storage/epochs.py)."""
    stale = LayerDiagnostic.run_id == run_id
    session.execute(delete(LayerDiagnostic).where(stale if epoch == 0 else stale & (LayerDiagnostic.epoch == epoch)))
    session.add_all(
        LayerDiagnostic(run_id=run_id, epoch=epoch, layer=item["layer"], layer_index=item["index"],
                        **{name: item.get(name) for name in FIELDS})
        for item in layers
    )


def run_diagnostics(run_id: int) -> list[dict[str, Any]]:
    """Every stored diagnostics row of one run, by epoch then layer."""
    with session_scope() as session:
        rows = session.execute(
            select(LayerDiagnostic.epoch, LayerDiagnostic.layer, LayerDiagnostic.layer_index,
                   *(getattr(LayerDiagnostic, name) for name in FIELDS))
            .where(LayerDiagnostic.run_id == run_id).order_by(LayerDiagnostic.epoch, LayerDiagnostic.layer_index)
        )
        return [row._asdict() for row in rows]


def _at_init_and_latest(session, table, study_id: int, *columns, where=()):
    """Rows of ``table`` for the study's runs at epoch 0 and at each run's latest epoch.

    Two steps, both on the (run_id, epoch, ...) unique index: each run's latest epoch (a
    covering scan), then only the rows at those epochs. layer_stats rows carry their
    histograms, so reading every epoch's rows to keep two of them cost 50 ms for 64 runs.
    """
    latest = dict(session.execute(
        select(table.run_id, func.max(table.epoch)).join(Run, Run.id == table.run_id)
        .where(Run.study_id == study_id).group_by(table.run_id)
    ).all())
    if not latest:
        return []
    rows = session.execute(
        select(table.run_id, table.epoch, *columns)
        .where(table.run_id.in_(latest), table.epoch.in_({0, *latest.values()}), *where)
        .order_by(table.run_id, table.epoch)
    )
    return [row._asdict() for row in rows if row.epoch in (0, latest[row.run_id])]


def failure_inputs(study_id: int) -> dict[str, Any] | None:
    """What app/analysis/failures.py needs of a study; None when there is no such study.

    runs: id, initializer, params, seed, status, diverged_epoch and its grid cell's coordinates (activation,
    depth, weight_variance, bias_variance; None outside a grid); diagnostics and gradients
    (layer_stats kind "gradient", its L2 norm) at epoch 0 and the latest epoch; losses: every
    recorded epoch's loss, val_loss, accuracy and val_accuracy (a run that trains on after diverging is still
    running).
    """
    with session_scope() as session:
        spec = session.scalar(select(Study.spec).where(Study.id == study_id))
        if spec is None:
            return None
        runs = session.execute(
            select(Run.id, Run.initializer, Run.initializer_params, Run.seed, Run.status, Run.epoch, Run.epochs,
                   Run.diverged_epoch, Run.activation, Run.depth, Run.weight_variance, Run.bias_variance)
            .where(Run.study_id == study_id).order_by(Run.id)
        )
        runs = [row._asdict() for row in runs]
        diagnostics = _at_init_and_latest(
            session, LayerDiagnostic, study_id, LayerDiagnostic.layer, LayerDiagnostic.layer_index,
            *(getattr(LayerDiagnostic, name) for name in FIELDS),
        )
        gradients = _at_init_and_latest(
            session, LayerStat, study_id, LayerStat.layer, LayerStat.layer_index, LayerStat.l2,
            where=(LayerStat.kind == "gradient",),
        )
        losses = session.execute(
            select(EpochMetric.run_id, EpochMetric.epoch, EpochMetric.loss, EpochMetric.val_loss,
                   EpochMetric.accuracy, EpochMetric.val_accuracy)
            .join(Run, Run.id == EpochMetric.run_id).where(Run.study_id == study_id)
            .order_by(EpochMetric.run_id, EpochMetric.epoch)
        )
        return {"spec": spec, "runs": runs, "diagnostics": diagnostics, "gradients": gradients,
                "losses": [row._asdict() for row in losses]}
